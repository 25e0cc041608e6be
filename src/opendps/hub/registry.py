"""The identity registry of one built-in hub: device identities with their keys."""

from __future__ import annotations

import base64
import os
from typing import Any

from ..protocol.ids import token_hex
from ..protocol.timefmt import format_utc, utc_now
from ..store.interface import EtagMismatch, NotFound, Store, StoredDoc


class RegistryError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def normalise_device(device_id: str, body: dict[str, Any], previous: dict | None) -> dict:
    """A registry ``Device`` PUT body becomes the stored document (keys generated if absent)."""
    auth = body.get("authentication") or {}
    kind = auth.get("type") or "sas"
    if kind not in ("sas", "selfSigned", "certificateAuthority", "none"):
        raise RegistryError(400, "ArgumentInvalid", f"authentication.type {kind!r} is invalid")
    doc: dict[str, Any] = {
        "deviceId": device_id,
        "generationId": (previous or {}).get("generationId") or token_hex(9),
        "status": body.get("status") or "enabled",
        "statusReason": body.get("statusReason"),
        "capabilities": {"iotEdge": bool((body.get("capabilities") or {}).get("iotEdge"))},
        "statusUpdatedTime": format_utc(utc_now()),
    }
    if doc["status"] not in ("enabled", "disabled"):
        raise RegistryError(400, "ArgumentInvalid", "status must be 'enabled' or 'disabled'")
    authentication: dict[str, Any] = {"type": kind}
    if kind == "sas":
        keys = auth.get("symmetricKey") or {}
        authentication["symmetricKey"] = {
            "primaryKey": keys.get("primaryKey") or _new_key(),
            "secondaryKey": keys.get("secondaryKey") or _new_key(),
        }
    elif kind == "selfSigned":
        authentication["x509Thumbprint"] = auth.get("x509Thumbprint") or {}
    doc["authentication"] = authentication
    return doc


class DeviceRegistry:
    def __init__(self, store: Store, host_name: str) -> None:
        self.store = store
        self.host_name = host_name

    async def get(self, device_id: str) -> StoredDoc | None:
        return await self.store.get_device(self.host_name, device_id)

    async def put(self, device_id: str, body: dict[str, Any], if_match: str | None, *,
                  previous: StoredDoc | bool | None = True) -> StoredDoc:
        """``previous``: the caller's fresh read of the device (None: absent), or True to
        read it here."""
        if previous is True:
            previous = await self.get(device_id)
        assert previous is None or isinstance(previous, StoredDoc)
        doc = normalise_device(device_id, body, previous.doc if previous else None)
        try:
            stored = await self.store.put_device(self.host_name, device_id, doc,
                                                 if_match=if_match)
        except EtagMismatch:
            raise RegistryError(412, "PreconditionFailed", "the etag does not match") from None
        except NotFound:
            raise RegistryError(404, "DeviceNotFound", f"device {device_id} not found") from None
        # no twin row: a new device's twin is unwritten until something writes it (twins.py),
        # and a deleted device's row went with it
        return stored

    async def add(self, device_id: str, body: dict[str, Any]) -> StoredDoc | None:
        """Create the identity unless one exists (None then: read it and ``put``)."""
        return await self.store.add_device(self.host_name, device_id,
                                           normalise_device(device_id, body, None))

    async def delete(self, device_id: str, if_match: str | None) -> None:
        try:
            await self.store.delete_device(self.host_name, device_id, if_match=if_match)
        except NotFound:
            raise RegistryError(404, "DeviceNotFound", f"device {device_id} not found") from None
        except EtagMismatch:
            raise RegistryError(412, "PreconditionFailed", "the etag does not match") from None

    async def list(self, limit: int = 1000) -> list[StoredDoc]:
        out: list[StoredDoc] = []
        continuation = None
        while True:
            page = await self.store.list_devices(self.host_name, limit=min(limit, 1000),
                                                 continuation=continuation)
            out.extend(page.items)
            continuation = page.continuation
            if continuation is None or len(out) >= limit:
                return out[:limit]
