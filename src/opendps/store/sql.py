"""``SqlStore``: the ``Store`` protocol on SQLAlchemy's async engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opendps.store import sqldocs
from opendps.store import tables as t
from opendps.store.common import as_utc, check_limit, dump_json, fold
from opendps.store.engine import make_engine
from opendps.store.errors import translate, translated
from opendps.store.interface import (
    AccessPolicy,
    EnrollmentKind,
    EventItem,
    HubRecord,
    NotFound,
    Page,
    StoredDoc,
    StoreError,
    TelemetryEvent,
)
from opendps.store.loop_sqlite import PLANNED
from opendps.store.migrate import upgrade_engine

# Advisory lock key serialising telemetry appends on PostgreSQL (any fixed number will do).
_TELEMETRY_LOCK = 0x6F70656E64707301

# Telemetry statements are built once: SQLAlchemy caches their compiled form, and building a
# statement costs more than running it. ``properties`` is bound as JSON text we dump ourselves,
# so each message is serialised once and the returned copy is a plain ``json.loads``.
_INSERT_EVENTS_NUMBERED = sa.insert(t.telemetry).values(
    properties=sa.bindparam("properties_json", type_=sa.Text()))
_INSERT_EVENTS = _INSERT_EVENTS_NUMBERED.returning(t.telemetry.c.seq,
                                                   sort_by_parameter_order=True)
# SQLite: seqs handed out under the write lock, then one executemany without RETURNING (with
# RETURNING, SQLAlchemy runs one INSERT per row there). AUTOINCREMENT's counter follows
# explicit seqs, so none is ever reused.
_LAST_SEQ_SQLITE = sa.text(
    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'telemetry'), 0) AS seq"
).columns(seq=sa.Integer()).execution_options(**{PLANNED: True})
# ... and that executemany as a plan on the driver (see loop_sqlite.PLANNED): every column a
# named bind, since a plan is compiled once, not per parameter set
_INSERT_EVENTS_SQLITE = sa.insert(t.telemetry).values(
    {**{c: sa.bindparam(c, type_=t.telemetry.c[c].type)
        for c in ("seq", "hub", "device_id", "enqueued", "body")},
     "properties": sa.bindparam("properties_json", type_=sa.Text())},
).execution_options(**{PLANNED: True})
# Seqs are global, so a hub's are not contiguous: the cutoff is its (keep+1)-th newest.
_TRIM_EVENTS = sa.delete(t.telemetry).where(
    t.telemetry.c.hub == sa.bindparam("hub"),
    t.telemetry.c.seq <= (
        sa.select(t.telemetry.c.seq).where(t.telemetry.c.hub == sa.bindparam("hub"))
        .order_by(t.telemetry.c.seq.desc()).limit(1).offset(sa.bindparam("keep"))
        .scalar_subquery()
    ),
)

_ENROLLMENTS = {"individual": t.individual_enrollments, "group": t.enrollment_groups}


async def open_store(url: str) -> SqlStore:
    """Open ``sqlite:///path`` or ``postgresql://...``, migrate it to head, return the store."""
    with translated():
        engine = make_engine(url)
    try:
        await upgrade_engine(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine)


def _policy(row: sa.Row[Any]) -> AccessPolicy:
    m = row._mapping
    return AccessPolicy(
        name=m["name"], primary_key=m["primary_key"], secondary_key=m["secondary_key"],
        rights=frozenset(m["rights"]),
    )


def _hub(row: sa.Row[Any]) -> HubRecord:
    m = row._mapping
    return HubRecord(
        host_name=m["host_name"], built_in=m["built_in"],
        connection_string=m["connection_string"], allocation_weight=m["allocation_weight"],
        apply_allocation_policy=m["apply_allocation_policy"], location=m["location"],
        policies=m["policies"],
    )


def _event(row: sa.Row[Any]) -> TelemetryEvent:
    m = row._mapping
    return TelemetryEvent(
        seq=m["seq"], hub=m["hub"], device_id=m["device_id"], enqueued=m["enqueued"],
        body=bytes(m["body"]), properties=m["properties"],
    )


class _Unit:
    """A transaction shared by the store calls of one task (``SqlStore.unit``)."""

    __slots__ = ("conn", "loop", "owner", "scope")

    def __init__(self) -> None:
        # tasks created inside the unit copy the context variable; only the owner joins
        self.owner = owner = asyncio.current_task()
        # every store call asks who is running; with the loop given, Python 3.11 skips the
        # ``getpid`` system call that finding the running loop costs
        self.loop = owner.get_loop() if owner is not None else None
        self.scope: AbstractAsyncContextManager[AsyncConnection] | None = None
        self.conn: AsyncConnection | None = None

    async def begin(self, engine: Any) -> AsyncConnection:
        """At the first write, so reads before it hold no lock."""
        if self.conn is None:
            scope = engine.begin()
            self.conn = await scope.__aenter__()
            self.scope = scope
        return self.conn


_UNIT: ContextVar[_Unit | None] = ContextVar("opendps_store_unit", default=None)


def _owned_unit() -> _Unit | None:
    unit = _UNIT.get()
    if unit is None or unit.owner is not asyncio.current_task(unit.loop):
        return None
    return unit


class _Joined:
    """A store call inside a unit: its connection, begun on the first write. (Classes, not
    ``@asynccontextmanager``: one is entered for every store call.)"""

    __slots__ = ("_engine", "_unit")

    def __init__(self, unit: _Unit, engine: Any) -> None:
        self._unit = unit
        self._engine = engine  # None: a read, which needs no transaction begun

    async def __aenter__(self) -> AsyncConnection:
        unit = self._unit
        if self._engine is None:
            assert unit.conn is not None
            return unit.conn
        return await unit.begin(self._engine)

    async def __aexit__(self, *exc: object) -> None:
        return None


class _UnitScope:
    """``SqlStore.unit()``: nested units join the outer one."""

    __slots__ = ("_token", "_unit")

    def __init__(self) -> None:
        self._unit: _Unit | None = None
        self._token: Any = None

    async def __aenter__(self) -> None:
        if _owned_unit() is None:
            self._unit = _Unit()
            self._token = _UNIT.set(self._unit)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        unit = self._unit
        if unit is None:
            return
        try:
            if unit.scope is not None:
                await unit.scope.__aexit__(exc_type, exc, tb)
        finally:
            _UNIT.reset(self._token)


class SqlStore:
    """Every write runs in its own IMMEDIATE transaction and is committed before returning,
    except inside ``unit()``, where the task's writes share one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        unit = _owned_unit()
        if unit is not None and unit.conn is not None:
            return _Joined(unit, None)  # read this unit's own writes
        return self._engine.connect()

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        unit = _owned_unit()
        if unit is not None:
            return _Joined(unit, self._engine)
        return self._engine.begin()

    def unit(self) -> AbstractAsyncContextManager[None]:
        """See ``Store.unit``. Nested units join the outer one."""
        return _UnitScope()

    @translate
    async def close(self) -> None:
        await self._engine.dispose()

    # -- settings ---------------------------------------------------------------------------
    @translate
    async def get_setting(self, key: str) -> str | None:
        async with self._read() as conn:
            value: str | None = await conn.scalar(
                sa.select(t.settings.c.value).where(t.settings.c.key == key)
            )
        return value

    @translate
    async def setting_if_absent(self, key: str, value: str) -> str:
        async with self._write() as conn:
            ins = sqldocs.dialect_insert(conn, t.settings).values(key=key, value=value)
            await conn.execute(ins.on_conflict_do_nothing(index_elements=["key"]))
            stored: str | None = await conn.scalar(
                sa.select(t.settings.c.value).where(t.settings.c.key == key)
            )
        if stored is None:  # cannot happen: settings are never deleted
            raise StoreError(f"setting {key!r} vanished")
        return stored

    @translate
    async def put_setting(self, key: str, value: str) -> None:
        async with self._write() as conn:
            await sqldocs.upsert(conn, t.settings, {"key": key, "value": value}, ["key"])

    # -- access policies --------------------------------------------------------------------
    @translate
    async def list_policies(self) -> list[AccessPolicy]:
        async with self._read() as conn:
            rows = await conn.execute(sa.select(t.access_policies).order_by("name"))
            return [_policy(r) for r in rows]

    @translate
    async def get_policy(self, name: str) -> AccessPolicy | None:
        async with self._read() as conn:
            stmt = sa.select(t.access_policies).where(t.access_policies.c.name == name)
            row = (await conn.execute(stmt)).first()
        return None if row is None else _policy(row)

    @translate
    async def put_policy(self, policy: AccessPolicy) -> None:
        values = {
            "name": policy.name, "primary_key": policy.primary_key,
            "secondary_key": policy.secondary_key, "rights": sorted(policy.rights),
        }
        async with self._write() as conn:
            await sqldocs.upsert(conn, t.access_policies, values, ["name"])

    # -- enrollments ------------------------------------------------------------------------
    @translate
    async def get_enrollment(self, kind: EnrollmentKind, key: str) -> StoredDoc | None:
        async with self._read() as conn:
            return await sqldocs.get(conn, _ENROLLMENTS[kind], {"key_lower": fold(key)}, "key")

    @translate
    async def put_enrollment(
        self, kind: EnrollmentKind, key: str, doc: dict[str, Any], *, if_match: str | None,
        attestation_type: str, enabled: bool,
    ) -> StoredDoc:
        values = {"key": key, "attestation_type": attestation_type, "enabled": enabled}
        async with self._write() as conn:
            return await sqldocs.put(
                conn, _ENROLLMENTS[kind], {"key_lower": fold(key)}, key, values, doc, if_match
            )

    @translate
    async def delete_enrollment(
        self, kind: EnrollmentKind, key: str, *, if_match: str | None
    ) -> None:
        async with self._write() as conn:
            await sqldocs.delete(conn, _ENROLLMENTS[kind], {"key_lower": fold(key)}, if_match)

    @translate
    async def query_enrollments(
        self, kind: EnrollmentKind, *, limit: int, continuation: str | None
    ) -> Page:
        table = _ENROLLMENTS[kind]
        async with self._read() as conn:
            return await sqldocs.page(
                conn, table, sa.true(), "key_lower", "key", limit, continuation
            )

    @translate
    async def groups_by_attestation(self, attestation_type: str) -> list[StoredDoc]:
        table = t.enrollment_groups
        stmt = (
            sa.select(table)
            .where(table.c.attestation_type == attestation_type)
            .order_by(table.c.key_lower)
        )
        async with self._read() as conn:
            return [sqldocs.to_doc(r, "key") for r in await conn.execute(stmt)]

    # -- registrations and operations -------------------------------------------------------
    @translate
    async def get_registration(self, registration_id: str) -> StoredDoc | None:
        ident = {"key_lower": fold(registration_id)}
        async with self._read() as conn:
            return await sqldocs.get(conn, t.registrations, ident, "key")

    @translate
    async def put_registration(
        self, registration_id: str, doc: dict[str, Any], *, group_id: str | None,
        device_id: str | None, assigned_hub: str | None,
    ) -> StoredDoc:
        values = {
            "key": registration_id, "group_id": None if group_id is None else fold(group_id),
            "device_id": device_id, "assigned_hub": assigned_hub,
        }
        ident = {"key_lower": fold(registration_id)}
        async with self._write() as conn:
            return await sqldocs.put(
                conn, t.registrations, ident, registration_id, values, doc, None
            )

    @translate
    async def delete_registration(self, registration_id: str, *, if_match: str | None) -> None:
        ident = {"key_lower": fold(registration_id)}
        async with self._write() as conn:
            await sqldocs.delete(conn, t.registrations, ident, if_match)

    @translate
    async def query_registrations(
        self, group_id: str, *, limit: int, continuation: str | None
    ) -> Page:
        where = t.registrations.c.group_id == fold(group_id)
        async with self._read() as conn:
            return await sqldocs.page(
                conn, t.registrations, where, "key_lower", "key", limit, continuation
            )

    @translate
    async def put_operation(
        self, operation_id: str, registration_id: str, doc: dict[str, Any]
    ) -> None:
        values = {"registration_id": fold(registration_id)}
        ident = {"operation_id": operation_id}
        async with self._write() as conn:
            await sqldocs.put(conn, t.operations, ident, operation_id, values, doc, None)

    @translate
    async def get_operation(self, operation_id: str) -> StoredDoc | None:
        async with self._read() as conn:
            return await sqldocs.get(
                conn, t.operations, {"operation_id": operation_id}, "operation_id"
            )

    # -- hubs -------------------------------------------------------------------------------
    @translate
    async def list_hubs(self) -> list[HubRecord]:
        async with self._read() as conn:
            rows = await conn.execute(sa.select(t.hubs).order_by(t.hubs.c.host_name))
            return [_hub(r) for r in rows]

    @translate
    async def get_hub(self, host_name: str) -> HubRecord | None:
        async with self._read() as conn:
            stmt = sa.select(t.hubs).where(t.hubs.c.host_name == host_name)
            row = (await conn.execute(stmt)).first()
        return None if row is None else _hub(row)

    @translate
    async def put_hub(self, hub: HubRecord) -> None:
        values = {
            "host_name": hub.host_name, "built_in": hub.built_in,
            "connection_string": hub.connection_string,
            "allocation_weight": hub.allocation_weight,
            "apply_allocation_policy": hub.apply_allocation_policy, "location": hub.location,
            "policies": hub.policies,
        }
        async with self._write() as conn:
            await sqldocs.upsert(conn, t.hubs, values, ["host_name"])

    @translate
    async def delete_hub(self, host_name: str) -> None:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(t.hubs).where(t.hubs.c.host_name == host_name))
            if result.rowcount == 0:
                raise NotFound(host_name)

    # -- devices and twins ------------------------------------------------------------------
    @translate
    async def get_device(self, hub: str, device_id: str) -> StoredDoc | None:
        async with self._read() as conn:
            ident = {"hub": hub, "device_id": device_id}
            return await sqldocs.get(conn, t.devices, ident, "device_id")

    @translate
    async def put_device(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        ident = {"hub": hub, "device_id": device_id}
        async with self._write() as conn:
            return await sqldocs.put(conn, t.devices, ident, device_id, {}, doc, if_match)

    @translate
    async def add_device(self, hub: str, device_id: str, doc: dict[str, Any]
                         ) -> StoredDoc | None:
        ident = {"hub": hub, "device_id": device_id}
        async with self._write() as conn:
            return await sqldocs.add(conn, t.devices, ident, device_id, doc)

    @translate
    async def delete_device(self, hub: str, device_id: str, *, if_match: str | None) -> None:
        ident = {"hub": hub, "device_id": device_id}
        async with self._write() as conn:
            await sqldocs.delete(conn, t.devices, ident, if_match)
            await conn.execute(
                sa.delete(t.twins).where(t.twins.c.hub == hub, t.twins.c.device_id == device_id)
            )

    @translate
    async def list_devices(self, hub: str, *, limit: int, continuation: str | None) -> Page:
        where = t.devices.c.hub == hub
        async with self._read() as conn:
            return await sqldocs.page(
                conn, t.devices, where, "device_id", "device_id", limit, continuation
            )

    @translate
    async def get_twin(self, hub: str, device_id: str) -> StoredDoc | None:
        async with self._read() as conn:
            ident = {"hub": hub, "device_id": device_id}
            return await sqldocs.get(conn, t.twins, ident, "device_id")

    @translate
    async def put_twin(
        self, hub: str, device_id: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        ident = {"hub": hub, "device_id": device_id}
        async with self._write() as conn:
            return await sqldocs.put(conn, t.twins, ident, device_id, {}, doc, if_match)

    @translate
    async def add_twin(self, hub: str, device_id: str, doc: dict[str, Any]) -> StoredDoc | None:
        ident = {"hub": hub, "device_id": device_id}
        async with self._write() as conn:
            return await sqldocs.add(conn, t.twins, ident, device_id, doc)

    # -- CA certificates --------------------------------------------------------------------
    @translate
    async def get_ca_certificate(self, name: str) -> StoredDoc | None:
        async with self._read() as conn:
            return await sqldocs.get(conn, t.ca_certificates, {"key_lower": fold(name)}, "key")

    @translate
    async def put_ca_certificate(
        self, name: str, doc: dict[str, Any], *, if_match: str | None
    ) -> StoredDoc:
        ident = {"key_lower": fold(name)}
        async with self._write() as conn:
            return await sqldocs.put(
                conn, t.ca_certificates, ident, name, {"key": name}, doc, if_match
            )

    @translate
    async def delete_ca_certificate(self, name: str, *, if_match: str | None) -> None:
        async with self._write() as conn:
            await sqldocs.delete(conn, t.ca_certificates, {"key_lower": fold(name)}, if_match)

    @translate
    async def list_ca_certificates(self) -> list[StoredDoc]:
        table = t.ca_certificates
        async with self._read() as conn:
            rows = await conn.execute(sa.select(table).order_by(table.c.key_lower))
            return [sqldocs.to_doc(r, "key") for r in rows]

    @translate
    async def count_ca_certificates(self) -> int:
        async with self._read() as conn:
            value = await conn.scalar(sa.select(sa.func.count()).select_from(t.ca_certificates))
        return int(value or 0)

    # -- telemetry --------------------------------------------------------------------------
    async def append_event(
        self, hub: str, device_id: str, enqueued: datetime, body: bytes,
        properties: dict[str, Any], *, keep: int,
    ) -> TelemetryEvent:
        (event,) = await self.append_events(
            hub, [(device_id, enqueued, body, properties)], keep=keep)
        return event

    @translate
    async def append_events(
        self, hub: str, items: Sequence[EventItem], *, keep: int | None
    ) -> list[TelemetryEvent]:
        if keep is not None and keep < 0:
            raise ValueError("keep must not be negative")
        if not items:
            return []
        rows = [
            {"hub": hub, "device_id": device_id, "enqueued": as_utc(enqueued), "body": body,
             "properties_json": dump_json(properties)}
            for device_id, enqueued, body, properties in items
        ]
        async with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # Readers page by seq, so seqs must become visible in order: serialise appends
                # so none commits after a higher seq a reader may already have passed.
                # (SQLite's single writer gives this for free.)
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TELEMETRY_LOCK}
                )
            # PostgreSQL: a list of rows runs as one multi-row INSERT ("insertmanyvalues")
            # whose seqs come back in the order of ``rows``.
            if conn.dialect.name == "sqlite":
                last = int((await conn.execute(_LAST_SEQ_SQLITE)).scalar() or 0)
                seqs = list(range(last + 1, last + 1 + len(rows)))
                for seq, row in zip(seqs, rows, strict=True):
                    row["seq"] = seq
                await conn.execute(_INSERT_EVENTS_SQLITE, rows)
            else:
                seqs = (await conn.execute(_INSERT_EVENTS, rows)).scalars().all()
            if keep is not None:  # once per batch at most
                await conn.execute(_TRIM_EVENTS, {"hub": hub, "keep": keep})
        # the caller's properties, not the stored JSON parsed back: the same value, since
        # dump_json took them, and a parse per message was a tenth of the batch's CPU
        return [
            TelemetryEvent(seq=seq, hub=hub, device_id=row["device_id"],
                           enqueued=row["enqueued"], body=bytes(row["body"]),
                           properties=item[3])
            for seq, row, item in zip(seqs, rows, items, strict=True)
        ]

    @translate
    async def events_after(
        self, hub: str | None, seq: int, *, device_id: str | None, limit: int
    ) -> list[TelemetryEvent]:
        check_limit(limit)
        tel = t.telemetry
        stmt = sa.select(tel).where(tel.c.seq > seq).order_by(tel.c.seq).limit(limit)
        if hub is not None:
            stmt = stmt.where(tel.c.hub == hub)
        if device_id is not None:
            stmt = stmt.where(tel.c.device_id == device_id)
        async with self._read() as conn:
            return [_event(r) for r in await conn.execute(stmt)]

    @translate
    async def last_event_seq(self) -> int:
        async with self._read() as conn:
            value = await conn.scalar(sa.select(sa.func.max(t.telemetry.c.seq)))
        return int(value or 0)
