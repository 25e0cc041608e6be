"""Every per-registration lookup is an index search, never a table scan (issue 5).

With a million enrollments and registration records a scan would make each registration cost
O(n); a B-tree search keeps it O(log n). Rather than restating the SQL, the statements are
captured from the database connection while the real store methods run, so the test follows
the code:
SQLite's ``EXPLAIN QUERY PLAN`` must say SEARCH (not SCAN), PostgreSQL's ``EXPLAIN`` (with
sequential scans priced out, as a few test rows would otherwise make a scan the cheap plan)
must use an index.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from opendps.store import SqlStore

Lookup = Callable[[SqlStore], Awaitable[Any]]

# The lookups a registration (and its poll) makes, as the engine and hub call them.
LOOKUPS: dict[str, Lookup] = {
    "get_enrollment(individual)": lambda s: s.get_enrollment("individual", "dev-0001"),
    "get_enrollment(group)": lambda s: s.get_enrollment("group", "group-0001"),
    "get_registration": lambda s: s.get_registration("dev-0001"),
    "get_operation": lambda s: s.get_operation("op-0001"),
    "get_device": lambda s: s.get_device("hub.example", "dev-0001"),
}


@asynccontextmanager
async def captured(store: SqlStore) -> AsyncIterator[list[tuple[str, Any]]]:
    """(statement, parameters) of every SELECT the database receives while the block runs.

    SQLite statements may run straight on the driver connection (prebuilt plans skip
    SQLAlchemy's events), so there SQLite's own trace hook reports them, with the values
    inlined; PostgreSQL's go through SQLAlchemy's ``before_cursor_execute``."""
    seen: list[tuple[str, Any]] = []
    engine = store.engine.sync_engine

    def keep(statement: str, parameters: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    if engine.dialect.name == "sqlite":
        def traced(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.set_trace_callback(lambda sql: keep(sql, ()))

        # close every open connection (pooled or kept by the engine), so each one the store
        # uses inside the block is new and traced, and none stays traced after it
        await store.engine.dispose()
        sa.event.listen(engine, "connect", traced)
        try:
            yield seen
        finally:
            sa.event.remove(engine, "connect", traced)
            await store.engine.dispose()
        return

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               _executemany: bool) -> None:
        keep(statement, parameters)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


async def _seed(store: SqlStore) -> None:
    """A few rows so the lookups have something to find (the plan does not depend on it)."""
    doc = {"registrationId": "dev-0001"}
    await store.put_enrollment("individual", "dev-0001", doc, if_match=None,
                               attestation_type="symmetricKey", enabled=True)
    await store.put_enrollment("group", "group-0001", {"enrollmentGroupId": "group-0001"},
                               if_match=None, attestation_type="symmetricKey", enabled=True)
    await store.put_registration("dev-0001", doc, group_id=None, device_id="dev-0001",
                                 assigned_hub="hub.example")
    await store.put_operation("op-0001", "dev-0001", {"operationId": "op-0001"})
    await store.put_device("hub.example", "dev-0001", {"deviceId": "dev-0001"}, if_match=None)


async def _plan(store: SqlStore, statement: str, parameters: Any) -> str:
    async with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(r[-1]) for r in rows)
        await conn.exec_driver_sql("SET enable_seqscan = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(r[0]) for r in rows)


@pytest.mark.parametrize("name", list(LOOKUPS))
async def test_lookup_is_an_index_search(sql_store: SqlStore, name: str) -> None:
    await _seed(sql_store)
    async with captured(sql_store) as statements:
        found = await LOOKUPS[name](sql_store)
    assert found is not None, "the lookup should find the seeded row"
    assert statements, f"{name} sent no SELECT"
    for statement, parameters in statements:
        plan = await _plan(sql_store, statement, parameters)
        if sql_store.engine.dialect.name == "sqlite":
            assert "SEARCH" in plan and "SCAN" not in plan, (statement, plan)
        else:
            assert "Index" in plan and "Seq Scan" not in plan, (statement, plan)
