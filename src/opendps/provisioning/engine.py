"""The DPS engine: attest, decide, register in the hub, record. Transport-agnostic: HTTPS and
MQTT front ends call the same three methods with a ``RegistrationRequest``."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol import registration as wire
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.regid import is_valid_registration_id, registration_key
from ..protocol.timefmt import parse_utc, utc_now
from ..store.interface import Store
from .allocate import Candidate, choose_hub
from .attest import Attested, attest_symmetric_key
from .hub_port import DeviceSpec, HubDirectory


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    id_scope: str
    registration_id: str
    authorization: str | None  # SAS token text; None for X.509 (later)
    body: bytes = b""
    force: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP-shaped answer that every front end can render (MQTT topics carry the status)."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


def _new_operation_id() -> str:
    return f"4.{secrets.token_hex(8)}.{uuid.uuid4()}"


class ProvisioningEngine:
    def __init__(
        self,
        store: Store,
        hubs: HubDirectory,
        *,
        id_scope: str,
        retry_after: int = 3,
        clock: Callable[[], datetime] = utc_now,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hubs = hubs
        self.id_scope = id_scope
        self.retry_after = retry_after
        self._clock = clock
        self._wall = wall

    # -- shared checks --------------------------------------------------------------------
    def _check_target(self, req: RegistrationRequest) -> None:
        if req.id_scope.lower() != self.id_scope.lower():
            # the device cannot have a valid token for another scope
            raise DpsError(ErrorCode.UNAUTHORIZED, "Unauthorized")
        if not is_valid_registration_id(req.registration_id):
            raise DpsError(
                ErrorCode.INVALID_REGISTRATION_ID,
                "registrationId must be 1-128 characters of alphanumerics or ': . _ -', not "
                "starting or ending with a special character",
            )

    async def _attest(self, req: RegistrationRequest) -> Attested:
        return await attest_symmetric_key(
            self.store, id_scope=self.id_scope, registration_id=req.registration_id,
            token_text=req.authorization, now=self._wall())

    async def authenticate(self, req: RegistrationRequest) -> Attested:
        """Used at MQTT CONNECT: the same checks every request repeats."""
        self._check_target(req)
        return await self._attest(req)

    # -- register -----------------------------------------------------------------------------
    async def register(self, req: RegistrationRequest) -> Reply:
        self._check_target(req)
        body = wire.parse_device_registration(req.body)
        attested = await self._attest(req)
        if body.registration_id is not None and (
            body.registration_id.lower() != req.registration_id.lower()
        ):
            raise DpsError(ErrorCode.REGISTRATION_ID_MISMATCH,
                           "registrationId in the body differs from the one in the path")
        operation_id = _new_operation_id()
        state, status = await self._assign(req, attested, body.payload)
        await self.store.put_operation(
            operation_id, registration_key(req.registration_id),
            wire.operation_status(operation_id, status, state))
        return Reply(202, wire.operation_status(
            operation_id, wire.ASSIGNING,
            {"registrationId": req.registration_id, "status": wire.ASSIGNING}),
            retry_after=self.retry_after)

    async def _assign(
        self, req: RegistrationRequest, attested: Attested, payload: Any
    ) -> tuple[dict[str, Any], str]:
        """Do the whole registration; return (registrationState, device-visible status)."""
        now = self._clock()
        enrollment = attested.enrollment
        reg_id = req.registration_id
        previous = await self.store.get_registration(registration_key(reg_id))
        created = parse_utc(previous.doc["createdDateTimeUtc"]) if previous else now
        common = {
            "registration_id": reg_id, "created": created, "updated": now,
            "etag": wire.new_etag_value(str(uuid.uuid4())),
            "symmetric_key_group": attested.group_id, "attestation": "symmetricKey",
        }
        if not enrollment.enabled:
            state = wire.registration_state(
                status=wire.DISABLED, error_code=int(ErrorCode.DEVICE_DISABLED),
                error_message="The enrollment for this device is disabled", **common)
            await self._record(reg_id, state, attested, None, None)
            device_view = dict(state, status=wire.FAILED)
            return device_view, wire.FAILED

        device_id = enrollment.device_id or reg_id
        try:
            hub_name = await self._choose_hub(reg_id, enrollment, previous)
            port = self.hubs.port(hub_name)
            if port is None:
                raise DpsError(ErrorCode.HUB_NOT_LINKED, f"IoT hub {hub_name} is not linked")
            existed = await port.device_exists(device_id)
            await port.create_or_update_device(DeviceSpec(
                device_id, attested.device_keys[0], attested.device_keys[1], enrollment.iot_edge))
            twin = enrollment.initial_twin
            if twin and not existed:
                await port.apply_initial_twin(
                    device_id, twin.get("tags") or {}, (twin.get("properties") or {}).get(
                        "desired") or {})
        except DpsError as err:
            state = wire.registration_state(
                status=wire.FAILED, error_code=int(err.code), error_message=err.message,
                **common)
            await self._record(reg_id, state, attested, None, None)
            return state, wire.FAILED

        state = wire.registration_state(
            status=wire.ASSIGNED, assigned_hub=hub_name, device_id=device_id,
            substatus=wire.INITIAL_ASSIGNMENT, **common)
        await self._record(reg_id, state, attested, device_id, hub_name)
        return state, wire.ASSIGNED

    async def _choose_hub(self, reg_id: str, enrollment: Any, previous: Any) -> str:
        linked = [
            Candidate(h.host_name, h.allocation_weight, h.apply_allocation_policy)
            for h in await self.hubs.linked()
        ]
        allowed = enrollment.iot_hubs
        if previous is not None and previous.doc.get("status") == wire.ASSIGNED:
            current = previous.doc.get("assignedHub")
            names = {c.host_name.lower() for c in linked}
            if current and current.lower() in names and (
                not allowed or current.lower() in {h.lower() for h in allowed}
            ):
                return current  # idempotent re-registration
        return choose_hub(reg_id, linked, allowed, enrollment.allocation_policy)

    async def _record(self, reg_id: str, state: dict[str, Any], attested: Attested,
                      device_id: str | None, hub: str | None) -> None:
        await self.store.put_registration(
            registration_key(reg_id), state, group_id=attested.group_id,
            device_id=device_id, assigned_hub=hub)

    # -- poll -----------------------------------------------------------------------------------
    async def operation_status(self, req: RegistrationRequest, operation_id: str) -> Reply:
        self._check_target(req)
        await self._attest(req)
        if not operation_id:
            raise DpsError(ErrorCode.INVALID_OPERATION_ID, "operationId is required")
        stored = await self.store.get_operation(operation_id)
        if stored is None or (
            stored.doc.get("registrationState", {}).get("registrationId", "").lower()
            != req.registration_id.lower()
        ):
            raise DpsError(ErrorCode.OPERATION_NOT_FOUND, "Operation not found")
        doc = stored.doc
        if doc["status"] == wire.ASSIGNING:
            return Reply(202, doc, retry_after=self.retry_after)
        return Reply(200, doc)

    # -- registration status lookup ------------------------------------------------------
    async def registration_status(self, req: RegistrationRequest) -> Reply:
        self._check_target(req)
        wire.parse_device_registration(req.body)
        await self._attest(req)
        stored = await self.store.get_registration(registration_key(req.registration_id))
        if stored is None:
            raise DpsError(ErrorCode.REGISTRATION_NOT_FOUND, "Registration not found")
        doc = dict(stored.doc)
        if doc.get("status") == wire.DISABLED:
            doc["status"] = wire.FAILED
        return Reply(200, doc)
