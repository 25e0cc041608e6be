"""Run the packaged Alembic migrations from code (no alembic.ini on disk needed).

Several instances may start at once against one database, so the upgrade runs in a single
transaction holding a lock: ``pg_advisory_xact_lock`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite. Whoever comes second waits, then finds the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from opendps.store.engine import make_engine
from opendps.store.errors import translated

MIGRATIONS = Path(__file__).with_name("migrations")
# Arbitrary but fixed: every opendps process must use the same advisory lock key.
ADVISORY_LOCK_KEY = 0x6F70656E647073  # "opendps"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade_on(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Upgrade the database behind ``engine`` to head, serialised across processes."""
    with translated():
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
            await conn.run_sync(_upgrade_on)


async def _upgrade_url(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def upgrade(url: str) -> None:
    """Bring the database at ``url`` (``sqlite:///...`` or ``postgresql://...``) to head.

    Synchronous for CLIs and deploy scripts; from async code use ``upgrade_engine``.
    """
    asyncio.run(_upgrade_url(url))
