"""Several instances starting at once against an empty database: the schema upgrade runs
once (under the advisory lock), the others find it at head."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from integration.servers import create_pg_database

pytestmark = pytest.mark.postgres
UPGRADE = "import sys; from opendps.store.migrate import upgrade; upgrade(sys.argv[1])"


def test_concurrent_upgrades_of_one_database() -> None:
    url = create_pg_database()
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADE, url], stderr=subprocess.PIPE)
             for _ in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    versions, registrations = asyncio.run(_check(url))
    assert len(versions) == 1
    assert registrations == 0


async def _check(url: str) -> tuple[list, int]:
    conn = await asyncpg.connect(url)
    try:
        return (await conn.fetch("SELECT version_num FROM alembic_version"),
                await conn.fetchval("SELECT count(*) FROM registrations"))
    finally:
        await conn.close()
