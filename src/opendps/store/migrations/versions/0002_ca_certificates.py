"""CA certificates (the DPS "certificates" resource).

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-01 00:00:00

Hand-written and self-contained (no imports from the application), so it keeps meaning the
same thing when ``tables.py`` moves on. Only adds a table, so existing rows are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _key() -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL so listing order matches SQLite and Python.
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ca_certificates",
        sa.Column("key_lower", _key(), nullable=False),  # case-folded name (the identity)
        sa.Column("key", sa.Text(), nullable=False),  # the name as last spelled
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("created", _ts(), nullable=False),
        sa.Column("updated", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("key_lower", name="pk_ca_certificates"),
    )


def downgrade() -> None:
    op.drop_table("ca_certificates")
