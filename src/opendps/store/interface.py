"""The store's contract: small async operations the engines need, nothing SQL-shaped.

Documents are JSON-able dicts owned by the engines (their shape is defined in ``protocol/``);
the store indexes a few columns beside them and enforces etags. Every write is committed before
it returns (or, inside ``unit()``, before the unit ends), so anything the caller acknowledges
afterwards survives a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

EnrollmentKind = Literal["individual", "group"]

# One telemetry message to append: (device_id, enqueued, body, properties).
EventItem = tuple[str, datetime, bytes, dict[str, Any]]


class StoreError(Exception):
    """Base of the errors the store raises; driver errors never escape."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """The row already exists (a create that must not overwrite)."""


class EtagMismatch(StoreError):
    """``if_match`` was given and differs from the stored etag."""


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """One stored document with its store-managed metadata."""

    key: str  # the primary key as the caller spelled it on the last write
    doc: dict[str, Any]
    etag: str  # unquoted
    created: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class Page:
    items: list[StoredDoc]
    continuation: str | None  # None on the last page


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    name: str
    primary_key: str
    secondary_key: str
    rights: frozenset[str]


@dataclass(frozen=True, slots=True)
class HubRecord:
    host_name: str
    built_in: bool
    # connection string of an external hub; None for built-in ones
    connection_string: str | None
    allocation_weight: int = 1
    apply_allocation_policy: bool = True
    location: str = ""
    # hub service policies for built-in hubs: name -> (primary, secondary, rights)
    policies: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    seq: int
    hub: str
    device_id: str
    enqueued: datetime
    body: bytes
    properties: dict[str, Any]  # {"system": {...}, "application": {...}}


class Store(Protocol):
    """Async persistence. All keys are compared case-insensitively where Azure does
    (registration IDs, enrollment group IDs); device IDs are case-sensitive as in IoT Hub."""

    async def close(self) -> None: ...

    def unit(self) -> AbstractAsyncContextManager[None]:
        """Make this task's store calls inside the block one transaction, begun at the first
        write and committed at the end (rolled back if the block raises), so a registration's
        device, twin, record and operation land together. Calls from other tasks are not
        part of it. Nothing may await anything slow between two writes inside it: on SQLite
        the write lock is held from the first write to the end."""
        ...

    # -- instance settings (ID scope, generated keys, ...) ---------------------------------
    async def get_setting(self, key: str) -> str | None: ...

    async def setting_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless ``key`` exists; return what is stored (race-safe)."""
        ...

    async def put_setting(self, key: str, value: str) -> None:
        """Insert or overwrite (server certificate renewal)."""
        ...

    # -- service access policies ------------------------------------------------------------
    async def list_policies(self) -> list[AccessPolicy]: ...

    async def get_policy(self, name: str) -> AccessPolicy | None: ...

    async def put_policy(self, policy: AccessPolicy) -> None: ...

    # -- enrollments (individual and groups) -----------------------------------------------
    async def get_enrollment(self, kind: EnrollmentKind, key: str) -> StoredDoc | None: ...

    async def put_enrollment(
        self, kind: EnrollmentKind, key: str, doc: dict[str, Any], *, if_match: str | None,
        attestation_type: str, enabled: bool,
    ) -> StoredDoc:
        """Create or replace. ``if_match``: None = upsert, "*" = must exist, else must equal
        the stored etag (EtagMismatch; NotFound when absent). A new etag every write."""
        ...

    async def delete_enrollment(
        self, kind: EnrollmentKind, key: str, *, if_match: str | None
    ) -> None: ...

    async def query_enrollments(
        self, kind: EnrollmentKind, *, limit: int, continuation: str | None
    ) -> Page: ...

    async def groups_by_attestation(self, attestation_type: str) -> list[StoredDoc]:
        """Enabled and disabled groups of one attestation type (symmetric-key lookup)."""
        ...

    # -- registration records and operations ---------------------------------------------
    async def get_registration(self, registration_id: str) -> StoredDoc | None: ...

    async def put_registration(
        self, registration_id: str, doc: dict[str, Any], *, group_id: str | None,
        device_id: str | None, assigned_hub: str | None,
    ) -> StoredDoc: ...

    async def delete_registration(self, registration_id: str, *, if_match: str | None) -> None: ...

    async def query_registrations(
        self, group_id: str, *, limit: int, continuation: str | None
    ) -> Page: ...

    async def put_operation(
        self, operation_id: str, registration_id: str, doc: dict[str, Any]
    ) -> None: ...

    async def get_operation(self, operation_id: str) -> StoredDoc | None: ...

    # -- hubs -------------------------------------------------------------------------------
    async def list_hubs(self) -> list[HubRecord]: ...

    async def get_hub(self, host_name: str) -> HubRecord | None: ...

    async def put_hub(self, hub: HubRecord) -> None: ...

    async def delete_hub(self, host_name: str) -> None:
        """Unlink; NotFound when absent. Device identities of a built-in hub stay stored."""
        ...

    # -- hub device identities and twins -----------------------------------------------------
    async def get_device(self, hub: str, device_id: str) -> StoredDoc | None: ...

    async def put_device(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc: ...

    async def add_device(self, hub: str, device_id: str, doc: dict[str, Any]
                         ) -> StoredDoc | None:
        """Create an identity; None when one is stored already (``add_twin``'s rule)."""
        ...

    async def delete_device(self, hub: str, device_id: str, *, if_match: str | None) -> None:
        """Deletes the identity and its twin."""
        ...

    async def list_devices(self, hub: str, *, limit: int, continuation: str | None) -> Page: ...

    async def get_twin(self, hub: str, device_id: str) -> StoredDoc | None: ...

    async def put_twin(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        """Compare-and-swap on the etag; callers loop on EtagMismatch for read-modify-write."""
        ...

    async def add_twin(self, hub: str, device_id: str, doc: dict[str, Any]) -> StoredDoc | None:
        """Store the first version of a twin; None when one is stored already (another
        writer was first: read it and try again). A new device has no twin row until then."""
        ...

    # -- telemetry ------------------------------------------------------------------------------
    async def append_event(
        self, hub: str, device_id: str, enqueued: datetime, body: bytes,
        properties: dict[str, Any], *, keep: int,
    ) -> TelemetryEvent:
        """Append, then trim the hub's log to the newest ``keep`` events."""
        ...

    async def append_events(
        self, hub: str, items: Sequence[EventItem], *, keep: int | None
    ) -> list[TelemetryEvent]:
        """Append ``items`` in one transaction (group commit: one commit, one trim for the
        lot), seqs increasing in the order given; the events come back in that order.
        ``keep``: trim the hub's log to its newest ``keep`` events; None: do not trim now."""
        ...

    async def events_after(
        self, hub: str | None, seq: int, *, device_id: str | None, limit: int
    ) -> list[TelemetryEvent]: ...

    async def last_event_seq(self) -> int: ...

    # -- CA certificates (the DPS "certificates" resource) --------------------------------------
    async def get_ca_certificate(self, name: str) -> StoredDoc | None:
        """Names compare case-insensitively; ``key`` is the spelling of the last write."""
        ...

    async def put_ca_certificate(
        self, name: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        """Create or replace, with ``put_enrollment``'s ``if_match`` rules (None = upsert,
        "*" = must exist, else must equal the stored etag); an atomic compare-and-swap."""
        ...

    async def delete_ca_certificate(self, name: str, *, if_match: str | None) -> None: ...

    async def list_ca_certificates(self) -> list[StoredDoc]:
        """All certificates, ordered by case-folded name."""
        ...

    async def count_ca_certificates(self) -> int: ...
