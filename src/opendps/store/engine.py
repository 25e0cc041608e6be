"""Engine construction: URL rewriting and the per-connection SQLite settings that make
acknowledged writes durable and concurrent writers wait instead of failing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

# Execution option marking a transaction that will write; on SQLite it begins IMMEDIATE so
# the write lock is taken (waiting on busy_timeout) before anything is read.
WRITE = "opendps_write"

BUSY_TIMEOUT_MS = 30_000

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """``sqlite:///x`` -> ``sqlite+aiosqlite:///x``, ``postgresql://`` -> ``+asyncpg``."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.set(drivername=driver)


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")


def make_engine(url: str | URL) -> AsyncEngine:
    """An async engine for ``url`` with our session settings attached.

    SQLite URLs take ``?synchronous=normal|full|extra``. NORMAL (the default) in WAL mode writes
    each commit to the WAL before the commit returns, so nothing acknowledged is lost when the
    process is killed; FULL also fsyncs every commit, which adds power-loss durability at the
    cost of one disk flush per write (about 3x fewer registrations per second here)."""
    parsed = async_url(url)
    synchronous = str(parsed.query.get("synchronous", "NORMAL")).upper()
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    parsed = parsed.difference_update_query(["synchronous"])
    kwargs: dict[str, Any] = {"hide_parameters": True}  # parameters include secret keys
    if _is_memory(parsed):
        # Each connection would see its own empty database: share exactly one, handed to one
        # user at a time (a StaticPool would interleave concurrent transactions on it).
        kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine.sync_engine, synchronous)
    return engine


def _configure_sqlite(engine: sa.Engine, synchronous: str) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _ensure_wal(dbapi_connection, cursor)
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _ensure_wal(dbapi_connection: Any, cursor: Any) -> None:
    """Switch to WAL (a persistent, per-file setting) if the file is not in WAL yet.

    Switching needs an exclusive lock and SQLite reports "database is locked" at once, without
    consulting busy_timeout, when another process is opening the same new file; so retry, with
    an async sleep that does not block the event loop.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0] in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchall()
            return
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() > deadline:
                raise
        dbapi_connection.run_async(lambda _conn, pause=delay: asyncio.sleep(pause))
        delay = min(delay * 2, 0.1)
