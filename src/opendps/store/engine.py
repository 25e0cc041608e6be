"""Engine construction: URL rewriting and the per-connection SQLite settings that make
acknowledged writes durable and concurrent writers wait instead of failing."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from opendps.store.checkpointer import BACKSTOP_PAGES, WalCheckpointer
from opendps.store.loop_sqlite import LoopSqliteEngine, is_busy

BUSY_TIMEOUT_MS = 30_000

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """``sqlite:///x`` -> ``sqlite+pysqlite:///x`` (run on the loop, see ``loop_sqlite``),
    ``postgresql://`` -> ``+asyncpg``."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+pysqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.set(drivername=driver)


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")


def make_engine(url: str | URL) -> AsyncEngine | LoopSqliteEngine:
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
    if parsed.get_backend_name() == "sqlite":
        if _is_memory(parsed):
            # Each connection would see its own empty database: share exactly one (store
            # transactions never interleave on the loop, see loop_sqlite).
            kwargs.update(poolclass=StaticPool)
        sync_engine = sa.create_engine(parsed, **kwargs)
        checkpointer = None if _is_memory(parsed) else WalCheckpointer(str(parsed.database))
        _configure_sqlite(sync_engine, synchronous, checkpointer is not None)
        return LoopSqliteEngine(sync_engine, checkpointer)
    kwargs["pool_pre_ping"] = True
    return create_async_engine(parsed, **kwargs)


def _configure_sqlite(engine: sa.Engine, synchronous: str, background_checkpoints: bool
                      ) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            _ensure_wal(cursor)
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # 16 MiB of page cache instead of 2: with a million enrollments and registrations
            # the upper levels of every index stay in memory
            cursor.execute("PRAGMA cache_size = -16384")
            # 0: a busy writer is waited for by LoopSqliteEngine.begin, off the loop's clock
            cursor.execute("PRAGMA busy_timeout = 0")
            if background_checkpoints:  # see checkpointer: commits no longer checkpoint
                cursor.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        finally:
            cursor.close()



def _ensure_wal(cursor: Any) -> None:
    """Switch to WAL (a persistent, per-file setting) if the file is not in WAL yet.

    Switching needs an exclusive lock and SQLite reports "database is locked" at once, without
    consulting busy_timeout, when another process is opening the same new file; so retry (this
    runs once per connection, at start-up).
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
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
