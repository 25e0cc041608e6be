"""SQLite on the loop: the shared reader and writer, their fallbacks while held, the
datetime text, and WAL checkpoints on their own thread."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from opendps.store import open_store
from opendps.store.checkpointer import BACKSTOP_PAGES
from opendps.store.sql import SqlStore
from opendps.store.types import UtcDateTime

DOC = {"deviceId": "d", "status": "enabled"}


@pytest.fixture
async def store(tmp_path: Path) -> SqlStore:
    opened = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield opened
    await opened.close()


async def test_a_writer_held_across_an_await_makes_the_next_one_wait(store: SqlStore) -> None:
    """The shared writer is busy; the second writer takes a pooled connection, finds the
    database locked, and waits on the loop (not in SQLite) until the first commits."""
    engine = store.engine
    inside, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with store.unit():
            await store.put_device("hub", "a", DOC, if_match=None)
            inside.set()
            await release.wait()  # holds the write lock across an await
            order.append("first commits")

    async def second() -> None:
        await inside.wait()
        asyncio.get_running_loop().call_later(0.05, release.set)
        await store.put_device("hub", "b", DOC, if_match=None)
        order.append("second commits")

    await asyncio.wait_for(asyncio.gather(first(), second()), 30)
    assert order == ["first commits", "second commits"]
    assert await store.get_device("hub", "a") is not None
    assert await store.get_device("hub", "b") is not None
    assert not engine._writer._lent and not engine._reader._lent


async def test_a_failed_write_rolls_back_and_the_shared_writer_still_works(
        store: SqlStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.unit():
            await store.put_device("hub", "gone", DOC, if_match=None)
            raise RuntimeError("boom")
    writer = store.engine._writer._conn
    assert writer is not None
    assert not writer.sync_connection.connection.driver_connection.in_transaction
    await store.put_device("hub", "kept", DOC, if_match=None)
    assert await store.get_device("hub", "gone") is None
    assert await store.get_device("hub", "kept") is not None


async def test_a_reader_held_across_an_await_does_not_block_other_reads(
        store: SqlStore) -> None:
    await store.put_device("hub", "r", DOC, if_match=None)
    engine = store.engine
    async with engine.connect() as held:
        assert held is engine._writer._conn  # no transaction holds the writer: reads use it
        assert engine._writer._lent
        async with engine.connect() as second:
            assert second is engine._reader._conn
            assert (await store.get_device("hub", "r")) is not None  # a pooled connection
    assert not engine._reader._lent and not engine._writer._lent


async def test_reads_after_a_commit_keep_the_writers_page_cache(store: SqlStore) -> None:
    """The writer's cache is current after its own commit; the reader's is dropped whenever
    the WAL moves. Reads go to the writer while no transaction holds it, so a read after a
    registration's commit finds its pages in memory, and a read while a transaction is open
    goes to the reader and sees only what is committed."""
    engine = store.engine
    await store.put_device("hub", "before", DOC, if_match=None)
    async with engine.connect() as after_commit:
        assert after_commit is engine._writer._conn
        assert not after_commit.sync_connection.connection.driver_connection.in_transaction
    assert await store.get_device("hub", "before") is not None
    async with store.unit():
        await store.put_device("hub", "open", DOC, if_match=None)
        # the writer is in a transaction: a read outside it uses the reader, and does not
        # see the uncommitted row
        async with engine.connect() as outside:
            assert outside is engine._reader._conn
        assert await _committed(store, "open") is False
    assert await _committed(store, "open") is True
    assert not engine._reader._lent and not engine._writer._lent


async def _committed(store: SqlStore, device_id: str) -> bool:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT count(*) FROM devices WHERE device_id = :d"),
                                   {"d": device_id})).all()
    return bool(rows[0][0])


@pytest.mark.parametrize("value", [
    dt.datetime(2026, 12, 3, 10, 0, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 10, 0, 0, 123, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 11, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1, minutes=30))),
    dt.datetime(2026, 12, 3, 10, 0, 0),  # naive: taken to be UTC
])
def test_sqlite_datetimes_are_sqlalchemys_text_and_read_back_aware(
        value: dt.datetime) -> None:
    sqlite_dialect = sa.create_engine("sqlite://").dialect
    ours = UtcDateTime().dialect_impl(sqlite_dialect)
    bind = ours.bind_processor(sqlite_dialect)
    utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    # exactly what SQLAlchemy's own DATETIME writes, so rows written before still compare
    theirs = sa.DateTime().dialect_impl(sqlite_dialect).bind_processor(sqlite_dialect)
    assert bind(value) == theirs(utc.replace(tzinfo=None))
    result = ours.result_processor(sqlite_dialect, None)
    assert result(bind(value)) == utc and result(bind(value)).tzinfo is dt.UTC
    assert result("2026-12-03 10:00:00") == dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)
    assert bind(None) is None and result(None) is None


async def test_checkpoints_run_on_their_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite"
    store = await open_store(f"sqlite:///{path}")
    checkpointer = store.engine.checkpointer
    assert checkpointer is not None
    try:
        writer_pages = None
        for i in range(checkpointer.every * 3):
            await store.put_device("hub", f"d{i}", DOC, if_match=None)
            writer = store.engine._writer._conn
            assert writer is not None
            writer_pages = writer_pages or writer.sync_connection.exec_driver_sql(
                "PRAGMA wal_autocheckpoint").scalar()
        assert writer_pages == BACKSTOP_PAGES  # commits no longer checkpoint by themselves
        for _ in range(100):
            if checkpointer.checkpoints:
                break
            await asyncio.sleep(0.05)
        assert checkpointer.checkpoints >= 1
        assert checkpointer._thread is not None and checkpointer._thread.is_alive()
    finally:
        await store.close()
    assert not checkpointer._thread.is_alive()  # stopped with the store
    # everything committed is there after the close, checkpointed or not
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT count(*) FROM devices").fetchone()[0]
    assert count == checkpointer.every * 3
