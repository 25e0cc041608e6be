"""The DPS engine: attest, decide, register in the hub, record. Transport-agnostic: HTTPS and
MQTT front ends call the same three methods with a ``RegistrationRequest``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from ..protocol import jsontext
from ..protocol import registration as wire
from ..protocol.errors import DpsError, ErrorCode
from ..protocol.ids import guid, token_hex
from ..protocol.regid import is_valid_registration_id, registration_key
from ..protocol.timefmt import parse_utc, utc_now
from ..store.interface import Store
from .allocation_policy import AllocationSettings, Allocator
from .assign import INTERNAL, Assignment
from .attest import AttestationMemo, Attested, attest_symmetric_key
from .attest_x509 import X509Attested, attest_x509
from .hub_port import HubDirectory


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    id_scope: str
    registration_id: str
    authorization: str | None  # SAS token text; None for X.509
    body: bytes = b""
    force: bool = False
    # the chain the device presented in the TLS handshake (leaf first), if any
    client_chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP-shaped answer that every front end can render (MQTT topics carry the status)."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


log = logging.getLogger("opendps.dps")
FINISHED_KEPT = 4096  # final operations kept in memory for their polls (~1 KB each)
# the record's own operation: the registration that wrote it, for the polls that follow
OPERATION = "_operationId"


def _new_operation_id() -> str:
    return f"4.{token_hex(8)}.{guid()}"


def operation_from_record(operation_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The final operation of the registration that wrote ``record``, as ``_finish`` built it."""
    state = wire.device_state(record)
    status = wire.ASSIGNED if state.get("status") == wire.ASSIGNED else wire.FAILED
    return wire.operation_status(operation_id, status, state)


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
        allocator: Allocator | None = None,
    ) -> None:
        self.store = store
        self.hubs = hubs
        self.assignment = Assignment(hubs, allocator or Allocator(AllocationSettings(), None))
        self._background: set[asyncio.Future] = set()
        self.id_scope = id_scope
        self.retry_after = retry_after
        self._clock = clock
        self._wall = wall
        self._memo = AttestationMemo()
        # operations this process finished, for the polls that follow (see _remember)
        # kept as JSON bytes: one object each that the cyclic collector never walks, where
        # the document itself would be a dozen (thousands of them made its full passes slow)
        self._finished: dict[str, bytes] = {}

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

    async def _attest(self, req: RegistrationRequest) -> Attested | X509Attested:
        """A SAS token means symmetric key; otherwise the TLS client chain means X.509."""
        if req.authorization or not req.client_chain:
            return await attest_symmetric_key(
                self.store, id_scope=self.id_scope, registration_id=req.registration_id,
                token_text=req.authorization, now=self._wall(), memo=self._memo)
        return await attest_x509(self.store, registration_id=req.registration_id,
                                 chain=list(req.client_chain), now=self._clock())

    async def authenticate(self, req: RegistrationRequest) -> Attested | X509Attested:
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
        assigning = wire.operation_status(
            operation_id, wire.ASSIGNING,
            {"registrationId": req.registration_id, "status": wire.ASSIGNING})
        if self.assignment.allocator.policy(attested.enrollment) == "custom":
            # a webhook may take minutes (retries with back-off): answer now, finish later,
            # and let the device poll; the record says "assigning" until then
            await self.store.put_operation(operation_id, registration_key(req.registration_id),
                                           assigning)
            task = asyncio.ensure_future(self._finish(operation_id, req, attested, body.payload,
                                                      row=True))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            await self._finish(operation_id, req, attested, body.payload)
        return Reply(202, assigning, retry_after=self.retry_after)

    async def _finish(self, operation_id: str, req: RegistrationRequest,
                      attested: Attested | X509Attested, payload: Any, *,
                      row: bool = False) -> None:
        """``row``: the operation has a row of its own (a custom allocation's, which said
        "assigning" while the webhook ran), to be made final too. Otherwise the operation is
        stored in the record only (``OPERATION``): a fourth row and its pages written per
        registration were a fifth of its commit, for the few polls another instance answers."""
        key = registration_key(req.registration_id)
        try:
            # one transaction: the hub identity, the twin, the record (and the operation's
            # row) land together or not at all, and cost one commit
            async with self.store.unit():
                state, status = await self._assign(req, attested, payload, operation_id)
                operation = wire.operation_status(operation_id, status,
                                                  wire.device_state(state))
                if row:
                    await self.store.put_operation(operation_id, key, operation)
            self._remember(operation_id, operation)
            return
        except Exception:
            log.exception("registration of %s failed", req.registration_id)
        now = self._clock()
        state = wire.registration_state(
            registration_id=req.registration_id, status=wire.FAILED, created=now,
            updated=now, etag=wire.new_etag_value(guid()),
            error_code=int(ErrorCode.INTERNAL), error_message="An internal error occurred")
        await self.store.put_operation(
            operation_id, key,
            wire.operation_status(operation_id, wire.FAILED, wire.public_state(state)))

    def _remember(self, operation_id: str, operation: dict[str, Any]) -> None:
        """Keep a committed, final operation for the device's poll, which then needs no store
        read. Final operations never change, so this can only be missing, never stale; a poll
        answered by another worker or instance reads the store as before."""
        finished = self._finished
        if len(finished) >= FINISHED_KEPT:
            del finished[next(iter(finished))]  # the oldest
        finished[operation_id] = jsontext.dumpb(operation)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()

    async def _assign(
        self, req: RegistrationRequest, attested: Attested | X509Attested, payload: Any,
        operation_id: str,
    ) -> tuple[dict[str, Any], str]:
        """Do the whole registration; return (the record's state, device-visible status)."""
        now = self._clock()
        enrollment = attested.enrollment
        reg_id = req.registration_id
        previous = await self.store.get_registration(registration_key(reg_id))
        created = parse_utc(previous.doc["createdDateTimeUtc"]) if previous else now
        common = {
            "registration_id": reg_id, "created": created, "updated": now,
            "etag": wire.new_etag_value(guid()),
            "attestation": attested.attestation_block(),
        }
        if not enrollment.enabled:
            state = wire.registration_state(
                status=wire.DISABLED, error_code=int(ErrorCode.DEVICE_DISABLED),
                error_message="The enrollment for this device is disabled", **common)
            await self._record(reg_id, state, attested, None, None, operation_id)
            return state, wire.FAILED
        try:
            outcome = await self.assignment.run(
                registration_id=reg_id, attested=attested, payload=payload,
                previous=previous.doc if previous else None, force=req.force)
        except DpsError as err:
            state = wire.registration_state(
                status=wire.FAILED, error_code=int(err.code), error_message=err.message,
                **common)
            if previous is not None and INTERNAL in previous.doc:
                state[INTERNAL] = previous.doc[INTERNAL]
            await self._record(reg_id, state, attested, None, None, operation_id)
            return state, wire.FAILED

        state = wire.registration_state(
            status=wire.ASSIGNED, assigned_hub=outcome.hub, device_id=outcome.device_id,
            substatus=outcome.substatus, payload=outcome.payload, **common)
        state[INTERNAL] = outcome.internal
        await self._record(reg_id, state, attested, outcome.device_id, outcome.hub, operation_id)
        return state, wire.ASSIGNED

    async def _record(self, reg_id: str, state: dict[str, Any],
                      attested: Attested | X509Attested,
                      device_id: str | None, hub: str | None, operation_id: str) -> None:
        state[OPERATION] = operation_id
        await self.store.put_registration(
            registration_key(reg_id), state, group_id=attested.group_id,
            device_id=device_id, assigned_hub=hub)

    # -- poll -----------------------------------------------------------------------------------
    async def operation_status(self, req: RegistrationRequest, operation_id: str, *,
                               authenticated: bool = False) -> Reply:
        """``authenticated``: the caller's connection already passed ``authenticate`` for
        this registration ID (MQTT checks at CONNECT, as DPS does), so do not attest again."""
        self._check_target(req)
        if not authenticated:
            await self._attest(req)
        if not operation_id:
            raise DpsError(ErrorCode.INVALID_OPERATION_ID, "operationId is required")
        kept = self._finished.get(operation_id)
        doc = jsontext.loads(kept) if kept is not None else await self._stored_operation(
            req.registration_id, operation_id)
        if doc is None or (
            doc.get("registrationState", {}).get("registrationId", "").lower()
            != req.registration_id.lower()
        ):
            raise DpsError(ErrorCode.OPERATION_NOT_FOUND, "Operation not found")
        if doc["status"] == wire.ASSIGNING:
            return Reply(202, doc, retry_after=self.retry_after)
        return Reply(200, doc)

    async def _stored_operation(self, registration_id: str, operation_id: str
                                ) -> dict[str, Any] | None:
        """An operation this process does not hold: the record's own, else its own row (a
        custom allocation's, or one that failed inside opendps). Only a registration's latest
        operation is in its record; an earlier one is not found, as the device that started
        it has no use for it once it registered again."""
        record = await self.store.get_registration(registration_key(registration_id))
        if record is not None and record.doc.get(OPERATION) == operation_id:
            return operation_from_record(operation_id, record.doc)
        stored = await self.store.get_operation(operation_id)
        return stored.doc if stored is not None else None

    # -- registration status lookup ------------------------------------------------------
    async def registration_status(self, req: RegistrationRequest) -> Reply:
        self._check_target(req)
        wire.parse_device_registration(req.body)
        await self._attest(req)
        stored = await self.store.get_registration(registration_key(req.registration_id))
        if stored is None:
            raise DpsError(ErrorCode.REGISTRATION_NOT_FOUND, "Registration not found")
        return Reply(200, wire.device_state(stored.doc))
