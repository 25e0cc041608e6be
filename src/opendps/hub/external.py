"""An external IoT hub (Azure IoT Hub or another opendps) as the DPS engine's ``HubPort``.

ARCHITECTURE: the built-in hub and an external hub look the same to the engine. This one speaks
the IoT Hub registry REST API (protocol.md §7.3) with the hub's service connection string, and
returns what ``BuiltinHub`` returns, so the engine cannot tell them apart. Every failure the
engine should report to the device becomes a ``DpsError``; no message or log line carries the
key or the token.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import aiohttp

from ..protocol import connstr
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.twin_patch import merge
from ..provisioning.hub_port import DeviceSpec
from .external_http import RegistryHttp

log = logging.getLogger("opendps.hub.external")

# Statuses that mean another writer got between our GET and our write: read again, once.
RACING = (404, 409, 412)
# Device fields a registry PUT may carry; the rest (connection state, counters) are read-only.
WRITABLE = ("deviceId", "generationId", "etag", "status", "statusReason", "deviceScope",
            "parentScopes")


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def authentication(spec: DeviceSpec) -> dict[str, Any]:
    """The ``authentication`` block, spelled as ``BuiltinHub`` stores it."""
    if spec.auth_type == "sas":
        return {"type": "sas", "symmetricKey": {
            "primaryKey": spec.primary_key, "secondaryKey": spec.secondary_key}}
    if spec.auth_type == "selfSigned":
        thumbs = [*spec.thumbprints, None, None]
        return {"type": "selfSigned", "x509Thumbprint": {
            "primaryThumbprint": thumbs[0], "secondaryThumbprint": thumbs[1]}}
    return {"type": "certificateAuthority"}


def device_body(spec: DeviceSpec, current: dict[str, Any] | None) -> dict[str, Any]:
    """A PUT body that keeps what DPS does not own (generationId, etag, status, scopes)."""
    body = {k: current[k] for k in WRITABLE if current and current.get(k) is not None}
    body["deviceId"] = spec.device_id
    body.setdefault("status", "enabled")
    body["authentication"] = authentication(spec)
    body["capabilities"] = {"iotEdge": spec.iot_edge}
    return body


def _strip(section: Any) -> dict[str, Any]:
    """Twin properties without the service's ``$version`` / ``$metadata`` bookkeeping."""
    if not isinstance(section, dict):
        return {}
    return {k: v for k, v in section.items() if k not in ("$version", "$metadata")}


def _version(section: Any, default: int = 1) -> int:
    value = section.get("$version") if isinstance(section, dict) else None
    return value if isinstance(value, int) else default


def stored_twin(twin: dict[str, Any]) -> dict[str, Any]:
    """A registry ``Twin`` reshaped into the built-in hub's stored twin document."""
    props = twin.get("properties") or {}
    desired, reported = props.get("desired"), props.get("reported")
    version = twin.get("version")
    return {
        "tags": twin.get("tags") or {},
        "desired": _strip(desired),
        "reported": _strip(reported),
        "desiredVersion": _version(desired),
        "reportedVersion": _version(reported),
        "version": version if isinstance(version, int) else 1,
    }


class ExternalHub:
    """One linked external hub. Safe to share between concurrent registrations."""

    def __init__(self, connection_string: str, *, ca_file: str | None = None,
                 port: int = 443, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        connection = connstr.parse(connection_string)
        self.host_name = connection.host_name
        self._http = RegistryHttp(connection, ca_file=ca_file, port=port, timeout=timeout,
                                  session=session)

    async def __aenter__(self) -> ExternalHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the HTTP session if this hub created it (a session passed in is the caller's)."""
        await self._http.close()

    def __repr__(self) -> str:  # never the connection string: it holds the key
        return f"ExternalHub({self.host_name!r})"

    # -- HubPort ---------------------------------------------------------------------------
    async def device_exists(self, device_id: str) -> bool:
        return await self._get_device(device_id) is not None

    async def create_or_update_device(self, spec: DeviceSpec) -> bool:
        path = f"/devices/{_seg(spec.device_id)}"
        for attempt in range(2):
            current = await self._get_device(spec.device_id)
            reply = await self._http.call(
                "PUT", path, device_body(spec, current),
                if_match="*" if current is not None else None)
            if reply.status in (200, 201):
                return current is not None
            if reply.status in RACING and attempt == 0:
                log.info("IoT hub %s: device %s changed under us (%d); retrying",
                         self.host_name, spec.device_id, reply.status)
                continue
            raise self._http.failure(reply, "PUT", path)
        raise AssertionError("unreachable")

    async def delete_device(self, device_id: str) -> None:
        path = f"/devices/{_seg(device_id)}"
        reply = await self._http.call("DELETE", path, if_match="*")
        if reply.status not in (200, 204, 404):
            raise self._http.failure(reply, "DELETE", path)

    async def get_twin(self, device_id: str) -> dict[str, Any] | None:
        path = f"/twins/{_seg(device_id)}"
        reply = await self._http.call("GET", path)
        if reply.status == 404:
            return None
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise self._http.failure(reply, "GET", path)
        return stored_twin(reply.body)

    async def apply_initial_twin(self, device_id: str, tags: dict[str, Any],
                                 desired: dict[str, Any]) -> None:
        """Replaces tags and desired properties (nulls dropped, as the built-in hub does)."""
        path = f"/twins/{_seg(device_id)}"
        body = {"deviceId": device_id, "tags": merge({}, tags),
                "properties": {"desired": merge({}, desired)}}
        for attempt in range(2):
            reply = await self._http.call("PUT", path, body, if_match="*")
            if reply.status == 200:
                return
            if reply.status == 412 and attempt == 0:
                continue
            if reply.status == 404:
                raise DpsError(ErrorCode.HUB_UNAVAILABLE,
                               f"IoT hub {self.host_name} has no device {device_id} "
                               "for its initial twin (deleted while being provisioned?)")
            raise self._http.failure(reply, "PUT", path)

    # -- helpers ---------------------------------------------------------------------------
    async def _get_device(self, device_id: str) -> dict[str, Any] | None:
        path = f"/devices/{_seg(device_id)}"
        reply = await self._http.call("GET", path)
        if reply.status == 404:
            return None
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise self._http.failure(reply, "GET", path)
        return reply.body
