"""``MemoryStore``: the ``Store`` contract in process memory, for engine unit tests.

Same semantics as ``SqlStore`` (the contract suite runs against both): documents are JSON
round-tripped on the way in and out, so callers never share mutable state with the store.
Each method runs without awaiting, so every operation is atomic on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opendps.store.common import (
    as_utc,
    check_limit,
    copy_json,
    decode_continuation,
    encode_continuation,
    fold,
    new_etag,
    unquote_etag,
    utcnow,
)
from opendps.store.interface import (
    AccessPolicy,
    EnrollmentKind,
    EtagMismatch,
    EventItem,
    HubRecord,
    NotFound,
    Page,
    StoredDoc,
    TelemetryEvent,
)


@dataclass(slots=True)
class _Row:
    """A stored document plus the indexed values the queries filter on."""

    doc: StoredDoc
    index: dict[str, Any]


class _DocTable:
    """Etag-checked rows keyed by an identity (case-folded where Azure folds)."""

    def __init__(self) -> None:
        self.rows: dict[Any, _Row] = {}

    def get(self, ident: Any) -> StoredDoc | None:
        row = self.rows.get(ident)
        return None if row is None else dataclasses.replace(row.doc, doc=copy_json(row.doc.doc))

    def _check(self, ident: Any, if_match: str | None) -> _Row | None:
        row = self.rows.get(ident)
        if if_match is None:
            return row
        if row is None:
            raise NotFound()
        if if_match != "*" and row.doc.etag != unquote_etag(if_match):
            raise EtagMismatch()
        return row

    def put(
        self, ident: Any, key: str, doc: dict[str, Any], if_match: str | None,
        index: dict[str, Any] | None = None,
    ) -> StoredDoc:
        old = self._check(ident, if_match)
        now = utcnow()
        stored = StoredDoc(
            key=key, doc=copy_json(doc), etag=new_etag(),
            created=now if old is None else old.doc.created, updated=now,
        )
        self.rows[ident] = _Row(stored, dict(index or {}))
        return dataclasses.replace(stored, doc=copy_json(stored.doc))

    def add(self, ident: Any, key: str, doc: dict[str, Any]) -> StoredDoc | None:
        """``put`` unless a row is there (None then)."""
        return None if ident in self.rows else self.put(ident, key, doc, None)

    def delete(self, ident: Any, if_match: str | None) -> None:
        self._check(ident, "*" if if_match is None else if_match)
        del self.rows[ident]

    def page(
        self, order: Callable[[Any], str], limit: int, continuation: str | None,
        where: Callable[[Any, _Row], bool] | None = None,
    ) -> Page:
        """Keyset paging on ``order(ident)``, keeping rows where ``where(ident, row)``."""
        check_limit(limit)
        after = decode_continuation(continuation)
        picked = sorted(
            (order(ident), ident)
            for ident, row in self.rows.items()
            if (where is None or where(ident, row)) and (after is None or order(ident) > after)
        )
        more = len(picked) > limit
        picked = picked[:limit]
        token = encode_continuation(picked[-1][0]) if more else None
        items = [doc for _, i in picked if (doc := self.get(i)) is not None]
        return Page(items=items, continuation=token)


class MemoryStore:
    """In-memory ``Store``; nothing survives the process."""

    def __init__(self) -> None:
        self._settings: dict[str, str] = {}
        self._policies: dict[str, AccessPolicy] = {}
        self._enrollments = {"individual": _DocTable(), "group": _DocTable()}
        self._registrations = _DocTable()
        self._operations = _DocTable()
        self._hubs: dict[str, HubRecord] = {}
        self._devices = _DocTable()
        self._twins = _DocTable()
        self._ca_certificates = _DocTable()
        self._events: dict[int, TelemetryEvent] = {}
        self._hub_seqs: dict[str, deque[int]] = {}
        self._next_seq = 1

    async def close(self) -> None:
        return None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[None]:
        """Each call below is atomic already and nothing here survives a crash, so a unit only
        groups; unlike SQL it does not roll back what ran before an exception."""
        yield

    # -- settings ---------------------------------------------------------------------------
    async def get_setting(self, key: str) -> str | None:
        return self._settings.get(key)

    async def setting_if_absent(self, key: str, value: str) -> str:
        return self._settings.setdefault(key, value)

    async def put_setting(self, key: str, value: str) -> None:
        self._settings[key] = value

    # -- access policies --------------------------------------------------------------------
    async def list_policies(self) -> list[AccessPolicy]:
        return [self._policies[n] for n in sorted(self._policies)]

    async def get_policy(self, name: str) -> AccessPolicy | None:
        return self._policies.get(name)

    async def put_policy(self, policy: AccessPolicy) -> None:
        self._policies[policy.name] = policy

    # -- enrollments ------------------------------------------------------------------------
    async def get_enrollment(self, kind: EnrollmentKind, key: str) -> StoredDoc | None:
        return self._enrollments[kind].get(fold(key))

    async def put_enrollment(
        self, kind: EnrollmentKind, key: str, doc: dict[str, Any], *, if_match: str | None,
        attestation_type: str, enabled: bool,
    ) -> StoredDoc:
        index = {"attestation_type": attestation_type, "enabled": enabled}
        return self._enrollments[kind].put(fold(key), key, doc, if_match, index)

    async def delete_enrollment(
        self, kind: EnrollmentKind, key: str, *, if_match: str | None
    ) -> None:
        self._enrollments[kind].delete(fold(key), if_match)

    async def query_enrollments(
        self, kind: EnrollmentKind, *, limit: int, continuation: str | None
    ) -> Page:
        return self._enrollments[kind].page(lambda ident: ident, limit, continuation)

    async def groups_by_attestation(self, attestation_type: str) -> list[StoredDoc]:
        table = self._enrollments["group"]
        return [
            doc
            for ident in sorted(table.rows)
            if table.rows[ident].index["attestation_type"] == attestation_type
            and (doc := table.get(ident)) is not None
        ]

    # -- registrations and operations -------------------------------------------------------
    async def get_registration(self, registration_id: str) -> StoredDoc | None:
        return self._registrations.get(fold(registration_id))

    async def put_registration(
        self, registration_id: str, doc: dict[str, Any], *, group_id: str | None,
        device_id: str | None, assigned_hub: str | None,
    ) -> StoredDoc:
        index = {
            "group_id": None if group_id is None else fold(group_id),
            "device_id": device_id, "assigned_hub": assigned_hub,
        }
        return self._registrations.put(
            fold(registration_id), registration_id, doc, None, index
        )

    async def delete_registration(self, registration_id: str, *, if_match: str | None) -> None:
        self._registrations.delete(fold(registration_id), if_match)

    async def query_registrations(
        self, group_id: str, *, limit: int, continuation: str | None
    ) -> Page:
        folded = fold(group_id)
        return self._registrations.page(
            lambda ident: ident, limit, continuation,
            where=lambda _, row: row.index["group_id"] == folded,
        )

    async def put_operation(
        self, operation_id: str, registration_id: str, doc: dict[str, Any]
    ) -> None:
        index = {"registration_id": fold(registration_id)}
        self._operations.put(operation_id, operation_id, doc, None, index)

    async def get_operation(self, operation_id: str) -> StoredDoc | None:
        return self._operations.get(operation_id)

    # -- hubs -------------------------------------------------------------------------------
    async def list_hubs(self) -> list[HubRecord]:
        return [self._hub_copy(self._hubs[h]) for h in sorted(self._hubs)]

    async def get_hub(self, host_name: str) -> HubRecord | None:
        hub = self._hubs.get(host_name)
        return None if hub is None else self._hub_copy(hub)

    async def delete_hub(self, host_name: str) -> None:
        if self._hubs.pop(host_name, None) is None:
            raise NotFound(host_name)

    async def put_hub(self, hub: HubRecord) -> None:
        self._hubs[hub.host_name] = self._hub_copy(hub)

    @staticmethod
    def _hub_copy(hub: HubRecord) -> HubRecord:
        return dataclasses.replace(hub, policies=copy_json(hub.policies))

    # -- devices and twins ------------------------------------------------------------------
    async def get_device(self, hub: str, device_id: str) -> StoredDoc | None:
        return self._devices.get((hub, device_id))

    async def put_device(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        return self._devices.put((hub, device_id), device_id, doc, if_match)

    async def delete_device(self, hub: str, device_id: str, *, if_match: str | None) -> None:
        self._devices.delete((hub, device_id), if_match)
        self._twins.rows.pop((hub, device_id), None)

    async def list_devices(self, hub: str, *, limit: int, continuation: str | None) -> Page:
        return self._devices.page(
            lambda ident: ident[1], limit, continuation, where=lambda ident, _: ident[0] == hub
        )

    async def get_twin(self, hub: str, device_id: str) -> StoredDoc | None:
        return self._twins.get((hub, device_id))

    async def put_twin(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        return self._twins.put((hub, device_id), device_id, doc, if_match)

    async def add_device(self, hub: str, device_id: str, doc: dict[str, Any]
                         ) -> StoredDoc | None:
        return self._devices.add((hub, device_id), device_id, doc)

    async def add_twin(self, hub: str, device_id: str, doc: dict[str, Any]) -> StoredDoc | None:
        return self._twins.add((hub, device_id), device_id, doc)

    # -- CA certificates --------------------------------------------------------------------
    async def get_ca_certificate(self, name: str) -> StoredDoc | None:
        return self._ca_certificates.get(fold(name))

    async def put_ca_certificate(
        self, name: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        return self._ca_certificates.put(fold(name), name, doc, if_match)

    async def delete_ca_certificate(self, name: str, *, if_match: str | None) -> None:
        self._ca_certificates.delete(fold(name), if_match)

    async def list_ca_certificates(self) -> list[StoredDoc]:
        table = self._ca_certificates
        return [doc for ident in sorted(table.rows) if (doc := table.get(ident)) is not None]

    async def count_ca_certificates(self) -> int:
        return len(self._ca_certificates.rows)

    # -- telemetry --------------------------------------------------------------------------
    async def append_event(
        self, hub: str, device_id: str, enqueued: datetime, body: bytes,
        properties: dict[str, Any], *, keep: int,
    ) -> TelemetryEvent:
        (event,) = await self.append_events(
            hub, [(device_id, enqueued, body, properties)], keep=keep)
        return event

    async def append_events(
        self, hub: str, items: Sequence[EventItem], *, keep: int | None
    ) -> list[TelemetryEvent]:
        if keep is not None and keep < 0:
            raise ValueError("keep must not be negative")
        out: list[TelemetryEvent] = []
        seqs = self._hub_seqs.setdefault(hub, deque())
        for device_id, enqueued, body, properties in items:
            event = TelemetryEvent(
                seq=self._next_seq, hub=hub, device_id=device_id, enqueued=as_utc(enqueued),
                body=bytes(body), properties=copy_json(properties),
            )
            self._next_seq += 1
            self._events[event.seq] = event
            seqs.append(event.seq)
            out.append(dataclasses.replace(event, properties=copy_json(event.properties)))
        while keep is not None and len(seqs) > keep:
            del self._events[seqs.popleft()]
        return out

    async def events_after(
        self, hub: str | None, seq: int, *, device_id: str | None, limit: int
    ) -> list[TelemetryEvent]:
        check_limit(limit)
        out: list[TelemetryEvent] = []
        for event in self._events.values():  # insertion order is seq order
            if len(out) == limit:
                break
            if event.seq <= seq or (hub is not None and event.hub != hub):
                continue
            if device_id is not None and event.device_id != device_id:
                continue
            out.append(dataclasses.replace(event, properties=copy_json(event.properties)))
        return out

    async def last_event_seq(self) -> int:
        return max(self._events, default=0)
