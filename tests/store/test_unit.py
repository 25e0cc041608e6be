"""``Store.unit``: a task's writes inside it are one transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from opendps.store import SqlStore

DOC = {"deviceId": "d1", "status": "enabled"}


async def test_writes_commit_together_at_the_end(sql_store: SqlStore) -> None:
    async with sql_store.unit():
        await sql_store.put_device("hub", "d1", DOC, if_match=None)
        await sql_store.put_twin("hub", "d1", {"version": 1}, if_match=None)
        await sql_store.put_operation("op1", "d1", {"status": "assigned"})
        # the unit reads its own writes
        assert (await sql_store.get_device("hub", "d1")) is not None
    assert (await sql_store.get_device("hub", "d1")) is not None
    assert (await sql_store.get_twin("hub", "d1")) is not None
    assert (await sql_store.get_operation("op1")) is not None


async def test_an_exception_rolls_every_write_back(sql_store: SqlStore) -> None:
    with pytest.raises(RuntimeError):
        async with sql_store.unit():
            await sql_store.put_device("hub", "d1", DOC, if_match=None)
            await sql_store.put_operation("op1", "d1", {"status": "assigned"})
            raise RuntimeError("half way")
    assert await sql_store.get_device("hub", "d1") is None
    assert await sql_store.get_operation("op1") is None


async def test_other_tasks_do_not_see_or_join_the_unit(sql_store: SqlStore) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    seen: list[object] = []

    async def writer() -> None:
        async with sql_store.unit():
            await sql_store.put_device("hub", "d1", DOC, if_match=None)
            inside.set()
            await release.wait()

    async def other() -> None:
        await inside.wait()
        # not part of the unit: the uncommitted device is invisible here
        seen.append(await sql_store.get_device("hub", "d1"))
        release.set()

    await asyncio.wait_for(asyncio.gather(writer(), other()), 30)
    assert seen == [None]
    assert await sql_store.get_device("hub", "d1") is not None


async def test_a_task_started_inside_the_unit_does_not_join_it(sql_store: SqlStore) -> None:
    async with sql_store.unit():
        await sql_store.put_device("hub", "d1", DOC, if_match=None)
        # a child task copies the context; it must use its own transaction, which waits for
        # (SQLite) or runs beside (PostgreSQL) the unit, and outlives it safely
        child = asyncio.ensure_future(sql_store.put_operation("op1", "d1", {"s": 1}))
    await asyncio.wait_for(child, 30)
    assert await sql_store.get_operation("op1") is not None


async def test_nested_units_join_the_outer_one(sql_store: SqlStore) -> None:
    with pytest.raises(RuntimeError):
        async with sql_store.unit():
            async with sql_store.unit():
                await sql_store.put_device("hub", "d1", DOC, if_match=None)
            raise RuntimeError("outer fails after the inner block ended")
    assert await sql_store.get_device("hub", "d1") is None


async def test_a_unit_finds_its_task_once(sql_store: SqlStore,
                                          loop_lookups: Counter[str]) -> None:
    """Every store call checks that it runs in the unit's own task; with the loop the unit
    kept, that check makes no ``getpid`` system call on Python 3.11."""
    async with sql_store.unit():
        for n in range(5):
            await sql_store.put_device("hub", f"d{n}", {"deviceId": f"d{n}"}, if_match=None)
            assert await sql_store.get_device("hub", f"d{n}") is not None
    assert loop_lookups == {"opendps.store.sql.current_task": 1}
    for n in range(5):
        assert await sql_store.get_device("hub", f"d{n}") is not None
