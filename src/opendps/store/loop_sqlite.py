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
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine, Result

from opendps.store.checkpointer import WalCheckpointer

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

    def run_many(self, dbapi: sqlite3.Connection, rows: list[dict[str, Any]]) -> PlannedResult:
        """One ``executemany`` (no result rows): a telemetry batch."""
        binds = self.binds
        args = [[row[name] if proc is None else proc(row[name]) for name, proc in binds]
                for row in rows]
        cursor = dbapi.executemany(self.sql, args)
        try:
            return PlannedResult([], cursor.rowcount)
        finally:
            cursor.close()

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
        # a statement planned before is known by identity: asking SQLAlchemy for its
        # execution options again costs more than a primary-key read's Python side
        plan = _PLANS.get(id(statement))
        if plan is None or plan.statement is not statement:
            plan = None
            if statement.get_execution_options().get(PLANNED):
                plan = _PLANS[id(statement)] = _Plan(statement, self.dialect)
        if plan is not None and isinstance(parameters, dict | list | None):
            dbapi = self.sync_connection.connection.driver_connection
            try:
                if isinstance(parameters, list):
                    return plan.run_many(dbapi, parameters)
                return plan.run(dbapi, parameters or {})
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance(plan.sql, None, exc, sqlite3.Error) from exc
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def exec_driver_sql(self, sql: str, parameters: Any = None) -> Result[Any]:
        return self.sync_connection.exec_driver_sql(sql, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        sync = self.sync_connection
        if not sync.in_transaction() and sync.connection.driver_connection.in_transaction:
            # inside begin(): let SQLAlchemy know, so code that begins its own transaction
            # when none is open (Alembic) joins this one instead of committing it early
            sync.begin()
        return fn(sync, *args, **kwargs)


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked/busy": another connection holds the lock (retry)."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and (
        "locked" in str(orig) or "busy" in str(orig))


class LoopSqliteEngine:
    """``AsyncEngine``'s ``connect``/``begin``/``dispose`` for SQLite.

    Every ``begin()`` is ``BEGIN IMMEDIATE`` (a SQLite transaction here is begun to write), and
    ``connect()`` runs each statement on its own snapshot with no ``BEGIN`` at all. Reads share
    one long-lived connection and writes another, so neither checks a connection out of the
    pool per call; a caller that holds one across an await makes the next caller use a pooled
    connection instead."""

    def __init__(self, sync_engine: Engine, checkpointer: WalCheckpointer | None = None
                 ) -> None:
        self.sync_engine = sync_engine
        self.checkpointer = checkpointer
        self._reader = _SharedConnection(sync_engine)
        self._writer = _SharedConnection(sync_engine)

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> sa.URL:
        return self.sync_engine.url

    def connect(self) -> _ReadScope:
        # the writer's own page cache is current after its own commit, while any other
        # connection must drop its whole cache and re-read pages once the WAL has moved: so a
        # read uses the writer whenever no transaction holds it
        writer = self._writer
        return _ReadScope(self._reader if writer._lent else writer)

    def begin(self) -> _WriteScope:
        """A transaction committed on a clean exit, rolled back otherwise. When another
        process holds the write lock (SQLite answers "busy" at once: the connection's
        busy_timeout is 0), wait for it with ``asyncio.sleep`` so every other device keeps
        being served meanwhile."""
        return _WriteScope(self._writer, self.checkpointer)

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self._reader.close()
        self._writer.close()
        self.sync_engine.dispose()


class _SharedConnection:
    """One long-lived connection lent to one caller at a time; while it is lent, callers get
    a pooled connection instead (closed when they give it back)."""

    __slots__ = ("_conn", "_engine", "_lent")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: LoopConnection | None = None
        self._lent = False

    def acquire(self) -> tuple[LoopConnection, bool]:
        """The connection, and whether it is a pooled one."""
        if self._lent:
            return LoopConnection(self._engine.connect()), True
        conn = self._conn
        if conn is None or conn.sync_connection.closed:
            conn = self._conn = LoopConnection(self._engine.connect())
        self._lent = True
        return conn, False

    def release(self, conn: LoopConnection, pooled: bool) -> None:
        if pooled:
            conn.sync_connection.close()
        else:
            self._lent = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.sync_connection.close()
            self._conn = None


class _ReadScope:
    """``async with engine.connect()``: the shared reader, or a pooled one while it is held.
    A class rather than ``@asynccontextmanager``: it is entered on every store read."""

    __slots__ = ("_conn", "_pooled", "_shared")

    def __init__(self, shared: _SharedConnection) -> None:
        self._shared = shared
        self._conn: LoopConnection | None = None
        self._pooled = False

    async def __aenter__(self) -> LoopConnection:
        self._conn, self._pooled = self._shared.acquire()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        # no rollback: SQLite never began a transaction, and an in-memory database shares
        # its one connection with a writer whose transaction a rollback would end
        assert self._conn is not None
        self._shared.release(self._conn, self._pooled)
        self._conn = None


class _WriteScope:
    """``async with engine.begin()``: ``BEGIN IMMEDIATE`` on the shared writer (or a pooled
    connection while it is held), ``COMMIT`` on a clean exit, ``ROLLBACK`` otherwise."""

    __slots__ = ("_checkpointer", "_conn", "_pooled", "_shared")

    def __init__(self, shared: _SharedConnection, checkpointer: WalCheckpointer | None
                 ) -> None:
        self._shared = shared
        self._checkpointer = checkpointer
        self._conn: LoopConnection | None = None
        self._pooled = False

    async def __aenter__(self) -> LoopConnection:
        deadline = time.monotonic() + WRITE_WAIT_S
        delay = 0.0005
        while True:
            conn, self._pooled = self._shared.acquire()
            self._conn = conn
            try:
                conn.sync_connection.connection.driver_connection.execute("BEGIN IMMEDIATE")
                return conn
            except sqlite3.OperationalError as exc:
                self._release()
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
            except BaseException:
                self._release()
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        conn = self._conn
        assert conn is not None
        sync = conn.sync_connection
        try:
            if exc_type is None:
                try:
                    _end(sync, "COMMIT")
                except BaseException:
                    _end(sync, "ROLLBACK")
                    raise
                if self._checkpointer is not None:
                    self._checkpointer.committed()
            else:
                _end(sync, "ROLLBACK")
        finally:
            self._release()

    def _release(self) -> None:
        if self._conn is not None:
            self._shared.release(self._conn, self._pooled)
            self._conn = None


def _end(sync: Connection, verb: str) -> None:
    """End the transaction begun with a driver ``BEGIN``. If SQLAlchemy auto-began its own
    bookkeeping transaction (a statement not run as a plan), end it through SQLAlchemy, which
    ends SQLite's too; otherwise tell SQLite directly."""
    if sync.in_transaction():
        sync.commit() if verb == "COMMIT" else sync.rollback()
        return
    driver = sync.connection.driver_connection
    if driver.in_transaction:  # not when BEGIN failed, or a migration committed it itself
        driver.execute(verb)
