"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2024-01-01 00:00:00

Hand-written and self-contained (no imports from the application), so it keeps meaning the
same thing when ``tables.py`` moves on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _key() -> sa.types.TypeEngine[str]:
    # Byte-order collation on PostgreSQL so paging order matches SQLite and Python.
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _doc_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("created", _ts(), nullable=False),
        sa.Column("updated", _ts(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )
    op.create_table(
        "access_policies",
        sa.Column("name", _key(), nullable=False),
        sa.Column("primary_key", sa.Text(), nullable=False),
        sa.Column("secondary_key", sa.Text(), nullable=False),
        sa.Column("rights", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_access_policies"),
    )
    for name in ("individual_enrollments", "enrollment_groups"):
        op.create_table(
            name,
            sa.Column("key_lower", _key(), nullable=False),
            sa.Column("key", sa.Text(), nullable=False),
            sa.Column("attestation_type", sa.Text(), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            *_doc_columns(),
            sa.PrimaryKeyConstraint("key_lower", name=f"pk_{name}"),
        )
        op.create_index(
            f"ix_{name}_attestation_type_key_lower", name, ["attestation_type", "key_lower"]
        )
    op.create_table(
        "registrations",
        sa.Column("key_lower", _key(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("group_id", _key(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("assigned_hub", sa.Text(), nullable=True),
        *_doc_columns(),
        sa.PrimaryKeyConstraint("key_lower", name="pk_registrations"),
    )
    op.create_index(
        "ix_registrations_group_id_key_lower", "registrations", ["group_id", "key_lower"]
    )
    op.create_index(
        "ix_registrations_assigned_hub_device_id", "registrations", ["assigned_hub", "device_id"]
    )
    op.create_table(
        "operations",
        sa.Column("operation_id", sa.Text(), nullable=False),
        sa.Column("registration_id", sa.Text(), nullable=False),
        *_doc_columns(),
        sa.PrimaryKeyConstraint("operation_id", name="pk_operations"),
    )
    op.create_index("ix_operations_created", "operations", ["created"])
    op.create_table(
        "hubs",
        sa.Column("host_name", _key(), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.Column("connection_string", sa.Text(), nullable=True),
        sa.Column("allocation_weight", sa.Integer(), nullable=False),
        sa.Column("apply_allocation_policy", sa.Boolean(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("policies", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("host_name", name="pk_hubs"),
    )
    for name in ("devices", "twins"):
        op.create_table(
            name,
            sa.Column("hub", sa.Text(), nullable=False),
            sa.Column("device_id", _key(), nullable=False),
            *_doc_columns(),
            sa.PrimaryKeyConstraint("hub", "device_id", name=f"pk_{name}"),
        )
    op.create_table(
        "telemetry",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("enqueued", _ts(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_telemetry"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_telemetry_hub_seq", "telemetry", ["hub", "seq"])
    op.create_table(
        "connections",
        sa.Column("hub", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("connected_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("hub", "device_id", name="pk_connections"),
    )
    op.create_index("ix_connections_owner", "connections", ["owner"])


def downgrade() -> None:
    for name in (
        "connections",
        "telemetry",
        "twins",
        "devices",
        "hubs",
        "operations",
        "registrations",
        "enrollment_groups",
        "individual_enrollments",
        "access_policies",
        "settings",
    ):
        op.drop_table(name)
