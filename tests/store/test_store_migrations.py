"""Migrations: they match tables.py, are idempotent, tolerate concurrent starters, and
upgrade existing databases in place."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from opendps.store import open_store
from opendps.store.engine import make_engine
from opendps.store.migrate import alembic_config, current_revision, head_revision, upgrade
from opendps.store.tables import metadata
from opendps.store.types import JsonText, UtcDateTime

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
    assert revision == head_revision() == "0003"
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
    assert asyncio.run(_inspect(empty_url))[:2] == ("0003", [])


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
    assert revision == "0003" and diff == []


def _alembic(conn: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    getattr(command, action)(cfg, revision)


async def _migrate(url: str, action: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, action, revision)
    finally:
        await engine.dispose()


# The 0001 shape of individual_enrollments, independent of where tables.py has moved on.
_ENROLLMENTS_0001 = sa.table(
    "individual_enrollments",
    sa.column("key_lower", sa.Text()),
    sa.column("key", sa.Text()),
    sa.column("attestation_type", sa.Text()),
    sa.column("enabled", sa.Boolean()),
    sa.column("doc", JsonText()),
    sa.column("etag", sa.Text()),
    sa.column("created", UtcDateTime()),
    sa.column("updated", UtcDateTime()),
)
_CREATED = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def _insert_0001_enrollment(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(_ENROLLMENTS_0001).values(
                    key_lower="old-dev", key="Old-Dev", attestation_type="symmetricKey",
                    enabled=True, doc={"registrationId": "Old-Dev"}, etag="etag-0001",
                    created=_CREATED, updated=_CREATED,
                )
            )
    finally:
        await engine.dispose()


async def _check_upgraded(url: str) -> None:
    store = await open_store(url)  # upgrades 0001 -> head
    try:
        old = await store.get_enrollment("individual", "OLD-DEV")
        assert old is not None
        assert (old.key, old.etag) == ("Old-Dev", "etag-0001")
        assert old.doc == {"registrationId": "Old-Dev"}
        assert old.created == old.updated == _CREATED
        ca = await store.put_ca_certificate("Root", {"subject": "CN=Root"}, if_match=None)
        assert await store.get_ca_certificate("root") == ca
        assert await store.count_ca_certificates() == 1
        assert await store.list_ca_certificates() == [ca]
    finally:
        await store.close()


def test_upgrade_existing_0001_database(empty_url: str) -> None:
    asyncio.run(_migrate(empty_url, "upgrade", "0001"))
    revision, _, names = asyncio.run(_inspect(empty_url))
    assert revision == "0001" and "individual_enrollments" in names
    assert "ca_certificates" not in names
    asyncio.run(_insert_0001_enrollment(empty_url))

    asyncio.run(_check_upgraded(empty_url))
    revision, diff, names = asyncio.run(_inspect(empty_url))
    assert revision == head_revision() == "0003" and diff == []
    assert "ca_certificates" in names

    # and back: 0003 then 0002 downgrade, 0002 dropping only its table
    asyncio.run(_migrate(empty_url, "downgrade", "0001"))
    revision, _, names = asyncio.run(_inspect(empty_url))
    assert revision == "0001" and "ca_certificates" not in names
    upgrade(empty_url)

    async def reread() -> None:
        store = await open_store(empty_url)
        try:
            old = await store.get_enrollment("individual", "old-dev")
            assert old is not None and old.etag == "etag-0001"
            assert await store.count_ca_certificates() == 0
        finally:
            await store.close()

    asyncio.run(reread())


async def _registration_indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(
                lambda c: sa.inspect(c).get_indexes("registrations"))
    finally:
        await engine.dispose()
    return {i["name"] for i in found}


def test_0003_drops_the_unread_hub_index_and_keeps_the_rows(empty_url: str) -> None:
    """Every registration wrote the (assigned_hub, device_id) index that no query read."""
    asyncio.run(_migrate(empty_url, "upgrade", "0002"))
    assert asyncio.run(_registration_indexes(empty_url)) == {
        "ix_registrations_group_id_key_lower", "ix_registrations_assigned_hub_device_id"}

    async def put_record() -> None:
        engine = make_engine(empty_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.insert(sa.table(
                    "registrations", *(sa.column(n) for n in (
                        "key_lower", "key", "group_id", "device_id", "assigned_hub")),
                    sa.column("doc", JsonText()), sa.column("etag", sa.Text()),
                    sa.column("created", UtcDateTime()), sa.column("updated", UtcDateTime()),
                )).values(key_lower="dev-1", key="Dev-1", group_id="g", device_id="Dev-1",
                          assigned_hub="hub.local", doc={"registrationId": "Dev-1"},
                          etag="e-1", created=_CREATED, updated=_CREATED))
        finally:
            await engine.dispose()

    asyncio.run(put_record())
    upgrade(empty_url)
    assert asyncio.run(_registration_indexes(empty_url)) == {
        "ix_registrations_group_id_key_lower"}

    async def read() -> None:
        store = await open_store(empty_url)
        try:
            record = await store.get_registration("DEV-1")
            assert record is not None and record.etag == "e-1"
            page = await store.query_registrations("G", limit=10, continuation=None)
            assert [d.key for d in page.items] == ["Dev-1"]
        finally:
            await store.close()

    asyncio.run(read())
    asyncio.run(_migrate(empty_url, "downgrade", "0002"))
    assert "ix_registrations_assigned_hub_device_id" in asyncio.run(
        _registration_indexes(empty_url))
