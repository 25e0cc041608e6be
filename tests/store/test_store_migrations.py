"""Migrations: they match tables.py, are idempotent, and tolerate concurrent starters."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from opendps.store import open_store
from opendps.store.engine import make_engine
from opendps.store.migrate import current_revision, head_revision, upgrade
from opendps.store.tables import metadata

UPGRADER = "import sys; from opendps.store.migrate import upgrade; upgrade(sys.argv[1])"


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def _inspect(url: str) -> tuple[str | None, list[object], set[str]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(current_revision)
            diff = await conn.run_sync(_diff)
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    return revision, diff, names


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "fresh_pg_url"
    return str(request.getfixturevalue(name))


def test_migrations_match_tables_and_rerun_is_noop(empty_url: str) -> None:
    upgrade(empty_url)
    revision, diff, names = asyncio.run(_inspect(empty_url))
    assert revision == head_revision() == "0001"
    assert diff == []
    assert {t.name for t in metadata.sorted_tables} <= names

    async def write() -> None:
        store = await open_store(empty_url)
        await store.setting_if_absent("survives", "yes")
        await store.close()

    asyncio.run(write())
    upgrade(empty_url)  # second run: nothing to do, data untouched

    async def read() -> str | None:
        store = await open_store(empty_url)  # third run, via open_store
        try:
            return await store.get_setting("survives")
        finally:
            await store.close()

    assert asyncio.run(read()) == "yes"
    assert asyncio.run(_inspect(empty_url))[:2] == ("0001", [])


def test_concurrent_upgrades_both_succeed(empty_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADER, empty_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    revision, diff, _ = asyncio.run(_inspect(empty_url))
    assert revision == "0001" and diff == []
