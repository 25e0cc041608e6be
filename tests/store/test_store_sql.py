"""SqlStore specifics: crash durability on SQLite and the driver-error boundary."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from opendps.store import Conflict, SqlStore, StoreError, open_store
from opendps.store.engine import async_url
from opendps.store.errors import translated

WRITER = """
import asyncio, sys
from opendps.store import open_store

async def main() -> None:
    store = await open_store(sys.argv[1])
    for i in range(5):
        await store.put_device("hub", f"dev-{i}", {"i": i}, if_match=None)
    await store.setting_if_absent("k", "v")
    print("ok", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_sqlite_write_survives_sigkill(sqlite_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, sqlite_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line.strip() == b"ok"
    finally:
        proc.kill()  # SIGKILL right after the ack: no atexit, no close, no checkpoint
        await proc.wait()
    store = await open_store(sqlite_url)
    try:
        for i in range(5):
            got = await store.get_device("hub", f"dev-{i}")
            assert got is not None and got.doc == {"i": i}
        assert await store.get_setting("k") == "v"
    finally:
        await store.close()


async def _pragmas(url: str) -> dict:
    store = await open_store(url)
    try:
        async with store.engine.connect() as conn:
            return {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await store.close()


async def test_sqlite_pragmas(sqlite_url: str) -> None:
    pragma = await _pragmas(sqlite_url)
    assert pragma["journal_mode"] == "wal"
    assert pragma["synchronous"] == 1  # NORMAL: in WAL mode a killed process loses nothing
    # busy_timeout 0: LoopSqliteEngine.begin waits for another writer with asyncio.sleep
    assert pragma["foreign_keys"] == 1 and pragma["busy_timeout"] == 0
    assert (await _pragmas(sqlite_url + "?synchronous=full"))["synchronous"] == 2
    with pytest.raises(ValueError):
        await _pragmas(sqlite_url + "?synchronous=off")


async def test_driver_errors_become_store_errors(sql_store: SqlStore) -> None:
    async with sql_store.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE hubs"))
    try:
        with pytest.raises(StoreError) as info:
            await sql_store.list_hubs()
        assert not isinstance(info.value, sa.exc.SQLAlchemyError)
        assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)
    finally:
        # put the table back for the next test sharing this database
        from opendps.store.tables import hubs

        async with sql_store.engine.begin() as conn:
            await conn.run_sync(hubs.create)


async def test_open_store_failures_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await open_store(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    with pytest.raises(StoreError):
        await open_store("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(ValueError):
        await open_store("mysql://localhost/x")


def test_integrity_error_is_conflict() -> None:
    err = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    with pytest.raises(Conflict), translated():
        raise err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite+pysqlite:///data/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+pysqlite:///x.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_url_rewriting(url: str, expected: str) -> None:
    assert async_url(url).render_as_string(hide_password=False) == expected


async def test_in_memory_sqlite_keeps_one_database() -> None:
    store = await open_store("sqlite://")
    try:
        await asyncio.gather(*(store.put_setting(f"k{i}", "v") for i in range(5)))
        assert [await store.get_setting(f"k{i}") for i in range(5)] == ["v"] * 5
    finally:
        await store.close()
