"""SQLite on the event loop's own thread, behind the slice of SQLAlchemy's async API that
``SqlStore`` uses.

Why: with aiosqlite every statement is a hop to a worker thread and back (a queue, a
``call_soon_threadsafe``, a greenlet switch and a GIL hand-over), which cost more CPU than the
statement itself: about 1 ms per store call, against 20–50 µs for the SQLite work. A local
SQLite statement in WAL mode finishes in microseconds, so running it inline is cheaper than
handing it off, and because nothing inside a store transaction really suspends, two
transactions never interleave on the loop: one connection at a time is all that is in use.

The price: a statement that waits (another process holding the write lock, a WAL checkpoint)
blocks the loop for that long. Writers therefore begin with ``BEGIN IMMEDIATE`` retried from the
loop with ``asyncio.sleep`` (see ``begin``), never inside SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine, Result

T = TypeVar("T")

# How long a writer waits, in total, for another process's write transaction.
WRITE_WAIT_S = 30.0

# Execution option on a long-lived statement (built once, run with parameters): run it on the
# DBAPI cursor with its compiled SQL and type processors, skipping SQLAlchemy's per-execution
# machinery (execution context, events, result metadata: ~40 µs a statement, several times
# SQLite's own cost for a primary-key read or upsert).
PLANNED = "opendps_planned"


class _Plan:
    """A statement compiled once: SQL text, bind order and processors, result processors."""

    __slots__ = ("binds", "keys", "results", "sql", "statement")

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        self.statement = statement  # keeps id(statement) from being reused while cached
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.binds = [(name, compiled.binds[name].type.dialect_impl(dialect)
                       .bind_processor(dialect)) for name in compiled.positiontup or ()]
        columns = list(getattr(statement, "selected_columns", ()))
        self.keys = [c.key for c in columns]
        self.results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in columns]

    def run(self, dbapi: sqlite3.Connection, params: dict[str, Any]) -> PlannedResult:
        args = [params[name] if proc is None else proc(params[name])
                for name, proc in self.binds]
        cursor = dbapi.execute(self.sql, args)
        try:
            raw = cursor.fetchall() if self.keys else []
            rowcount = cursor.rowcount
        finally:
            cursor.close()
        results = self.results
        rows = [PlannedRow(self.keys, [v if p is None or v is None else p(v)
                                       for v, p in zip(row, results, strict=True)])
                for row in raw]
        return PlannedResult(rows, rowcount)


class PlannedRow:
    """The parts of ``sa.Row`` the store reads: position and ``_mapping``."""

    __slots__ = ("_mapping", "_values")

    def __init__(self, keys: list[str], values: list[Any]) -> None:
        self._values = values
        self._mapping = dict(zip(keys, values, strict=True))

    def __getitem__(self, index: int) -> Any:
        return self._values[index]


class PlannedResult:
    """The parts of ``sa.Result`` the store reads."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[PlannedRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Any:
        return iter(self._rows)

    def all(self) -> list[PlannedRow]:
        return list(self._rows)

    def first(self) -> PlannedRow | None:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound("expected exactly one row")
        return self._rows[0][0]


_PLANS: dict[int, _Plan] = {}


class LoopConnection:
    """``AsyncConnection``'s methods, run synchronously on a sync ``Connection``."""

    __slots__ = ("sync_connection",)

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if isinstance(parameters, dict) and statement.get_execution_options().get(PLANNED):
            plan = _PLANS.get(id(statement))
            if plan is None:
                plan = _PLANS[id(statement)] = _Plan(statement, self.dialect)
            try:
                return plan.run(self.sync_connection.connection.driver_connection, parameters)
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance(plan.sql, None, exc, sqlite3.Error) from exc
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Any = None) -> Result[Any]:
        return self.sync_connection.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(self.sync_connection, *args, **kwargs)


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked/busy": another connection holds the lock (retry)."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and (
        "locked" in str(orig) or "busy" in str(orig))


class LoopSqliteEngine:
    """``AsyncEngine``'s ``connect``/``begin``/``execution_options``/``dispose`` for SQLite.

    Every ``begin()`` is ``BEGIN IMMEDIATE`` (a SQLite transaction here is begun to write), and
    ``connect()`` runs each statement on its own snapshot with no ``BEGIN`` at all. Reads share
    one long-lived connection: no pool checkout per read."""

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine
        self._reader: Connection | None = None
        self._reader_busy = False

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> sa.URL:
        return self.sync_engine.url

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[LoopConnection]:
        if self._reader_busy:  # a caller holds it across an await: use a pooled one
            with self.sync_engine.connect() as conn:
                yield LoopConnection(conn)
            return
        if self._reader is None or self._reader.closed:
            self._reader = self.sync_engine.connect()
        self._reader_busy = True
        try:
            yield LoopConnection(self._reader)
        finally:
            # no rollback: SQLite never began a transaction, and an in-memory database shares
            # its one connection with a writer whose transaction a rollback would end
            self._reader_busy = False

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[LoopConnection]:
        """A transaction committed on a clean exit. When another process holds the write lock
        (SQLite answers "busy" at once: the connection's busy_timeout is 0), wait for it here
        with ``asyncio.sleep`` so every other device keeps being served meanwhile."""
        deadline = time.monotonic() + WRITE_WAIT_S
        delay = 0.0005
        while True:
            conn = self.sync_engine.connect()
            try:
                conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                conn.close()
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
            except BaseException:
                conn.close()
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        with conn:
            conn.begin()  # SQLAlchemy's side of the transaction SQLite has already begun
            yield LoopConnection(conn)
            conn.commit()

    async def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.sync_engine.dispose()
