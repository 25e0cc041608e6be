"""Backends for the store contract suite: memory, SQLite (tmp_path) and PostgreSQL.

PostgreSQL runs against a database created for this session (dropped at the end); each test
starts from empty tables. If PostgreSQL is unreachable its tests fail, unless
OPENDPS_SKIP_POSTGRES=1 says to skip them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from opendps.store import MemoryStore, SqlStore, Store, open_store
from opendps.store.tables import metadata

# The server the PostgreSQL tests use; "test" is only used to create/drop our own databases.
PG_ADMIN_URL = os.environ.get("OPENDPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_UNAVAILABLE = "PostgreSQL unavailable"


def pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> str:
    """Create a uniquely named database and return its URL; fail (or skip) if we cannot."""
    if os.environ.get("OPENDPS_SKIP_POSTGRES") == "1":
        pytest.skip("OPENDPS_SKIP_POSTGRES=1")
    name = f"opendps_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        pytest.fail(
            f"{PG_UNAVAILABLE} at {PG_ADMIN_URL} ({exc!r}); "
            "set OPENDPS_SKIP_POSTGRES=1 to skip these tests",
            pytrace=False,
        )
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Report an unreachable PostgreSQL as a test failure, not a fixture error: these
    tests are expected to run, so their absence must not look like infrastructure noise."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    excinfo = call.excinfo
    if (
        call.when == "setup" and report.failed and excinfo is not None
        and item.get_closest_marker("postgres") is not None
        and excinfo.errisinstance(pytest.fail.Exception)
        and PG_UNAVAILABLE in str(excinfo.value)
    ):
        report.when = "call"


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One database for the session's contract tests."""
    name = create_pg_database()
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A brand-new, unmigrated database for migration tests."""
    name = create_pg_database()
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _url_for(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_session_url"))


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    # Sync on purpose: the PostgreSQL fixture runs its own event loop.
    return _url_for(request)


@pytest.fixture(params=SQL_BACKENDS)
def sql_url(request: pytest.FixtureRequest) -> str:
    return _url_for(request)


async def _empty_tables(store: SqlStore) -> None:
    """The PostgreSQL database is shared by the session, so start every test empty."""
    async with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(sa.delete(table))


async def _open(url: str) -> Store:
    if url == "memory":
        return MemoryStore()
    store = await open_store(url)
    if url.startswith("postgresql"):
        await _empty_tables(store)
    return store


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[Store]:
    opened = await _open(backend_url)
    yield opened
    await opened.close()


@pytest.fixture
async def sql_store(sql_url: str) -> AsyncIterator[SqlStore]:
    opened = await _open(sql_url)
    assert isinstance(opened, SqlStore)
    yield opened
    await opened.close()
