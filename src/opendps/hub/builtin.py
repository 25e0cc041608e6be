"""One built-in hub: registry, twins, telemetry and device authentication together. It is also
the DPS engine's ``HubPort`` for this hub, called in process."""

from __future__ import annotations

import time
from typing import Any

from cryptography import x509

from ..protocol import sas
from ..protocol.twin_patch import merge
from ..provisioning.hub_port import DeviceSpec
from ..store.interface import NotFound, Store
from .bus import EventBus
from .connections import ConnectionTable
from .registry import DeviceRegistry
from .telemetry import TelemetryIntake
from .twins import TwinService
from .x509_auth import DeviceAuthError, authenticate_x509


class BuiltinHub:
    def __init__(self, store: Store, host_name: str, bus: EventBus,
                 connections: ConnectionTable, *, telemetry_keep: int,
                 policies: dict[str, Any] | None = None) -> None:
        self.host_name = host_name
        # service access policies: name -> {"primaryKey", "secondaryKey", "rights"}
        self.policies = dict(policies or {})
        self.registry = DeviceRegistry(store, host_name)
        self.twins = TwinService(store, host_name, bus)
        self.telemetry = TelemetryIntake(store, host_name, bus, keep=telemetry_keep)
        self.connections = connections
        self.bus = bus

    # -- device authentication -----------------------------------------------------------
    async def authenticate(self, device_id: str, password: str | None,
                           now: float | None = None,
                           chain: tuple[x509.Certificate, ...] = ()) -> None:
        stored = await self.registry.get(device_id)
        if password is None:
            if not chain:
                raise DeviceAuthError("neither a SAS token nor a client certificate", 5)
            if stored is None:
                raise DeviceAuthError("not authorized", 5)
            await authenticate_x509(self.registry.store, stored.doc, device_id, list(chain))
            return
        try:
            token = sas.parse(password)
            sas.check_claims(token, f"{self.host_name}/devices/{device_id}",
                             time.time() if now is None else now)
        except sas.SasError as exc:
            raise DeviceAuthError(str(exc), 5) from None
        if stored is None:
            raise DeviceAuthError("not authorized", 5)
        auth = stored.doc.get("authentication") or {}
        keys = auth.get("symmetricKey") or {}
        if not sas.signature_matches(token, [k for k in keys.values() if k]):
            raise DeviceAuthError("not authorized", 5)
        if stored.doc.get("status") == "disabled":
            raise DeviceAuthError("device is disabled", 5)

    # -- HubPort for the DPS engine ----------------------------------------------------------
    async def device_exists(self, device_id: str) -> bool:
        return await self.registry.get(device_id) is not None

    async def create_or_update_device(self, spec: DeviceSpec) -> bool:
        if spec.fresh and await self.registry.add(spec.device_id, _identity(spec, {})):
            return False  # created: no read first
        previous = await self.registry.get(spec.device_id)
        body = _identity(spec, dict(previous.doc) if previous else {})
        await self.registry.put(spec.device_id, body, None, previous=previous)
        return previous is not None

    async def delete_device(self, device_id: str) -> None:
        try:
            await self.registry.store.delete_device(self.host_name, device_id, if_match=None)
        except NotFound:
            pass

    async def get_twin(self, device_id: str) -> dict[str, Any] | None:
        stored = await self.twins.get(device_id)
        return stored.doc if stored else None

    async def apply_initial_twin(self, device_id: str, tags: dict[str, Any],
                                 desired: dict[str, Any]) -> None:
        await self.twins.replace(device_id, merge({}, tags), merge({}, desired))

    async def close(self) -> None:
        """Finish storing queued telemetry (its senders get their answer); call before the
        store closes. New telemetry is refused from here on."""
        await self.telemetry.close()


def _identity(spec: DeviceSpec, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (the stored identity, or empty) with the authentication and capabilities DPS
    asks for."""
    if spec.auth_type == "sas":
        body["authentication"] = {"type": "sas", "symmetricKey": {
            "primaryKey": spec.primary_key, "secondaryKey": spec.secondary_key}}
    elif spec.auth_type == "selfSigned":
        thumbs = [*spec.thumbprints, None, None]
        body["authentication"] = {"type": "selfSigned", "x509Thumbprint": {
            "primaryThumbprint": thumbs[0], "secondaryThumbprint": thumbs[1]}}
    else:
        body["authentication"] = {"type": "certificateAuthority"}
    body["capabilities"] = {"iotEdge": spec.iot_edge}
    body.setdefault("status", "enabled")
    return body
