"""The schema, as SQLAlchemy Core tables. ``migrations/versions`` must keep matching it
(a test compares them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opendps.store.types import JsonText, UtcDateTime, key_text, seq_type

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


def _doc_columns() -> list[sa.Column[Any]]:
    """The stored document and the metadata every ``StoredDoc`` carries."""
    return [
        sa.Column("doc", JsonText(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("created", UtcDateTime(), nullable=False),
        sa.Column("updated", UtcDateTime(), nullable=False),
    ]


settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

access_policies = sa.Table(
    "access_policies",
    metadata,
    sa.Column("name", key_text(), primary_key=True),
    sa.Column("primary_key", sa.Text(), nullable=False),
    sa.Column("secondary_key", sa.Text(), nullable=False),
    sa.Column("rights", JsonText(), nullable=False),
)


def _enrollment_table(name: str) -> sa.Table:
    # key_lower is the case-folded ID (the identity); key is the caller's last spelling.
    return sa.Table(
        name,
        metadata,
        sa.Column("key_lower", key_text(), primary_key=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("attestation_type", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_doc_columns(),
        sa.Index(None, "attestation_type", "key_lower"),
    )


individual_enrollments = _enrollment_table("individual_enrollments")
enrollment_groups = _enrollment_table("enrollment_groups")

# Uploaded CA certificates (migration 0002); names are case-insensitive like enrollment IDs.
ca_certificates = sa.Table(
    "ca_certificates",
    metadata,
    sa.Column("key_lower", key_text(), primary_key=True),
    sa.Column("key", sa.Text(), nullable=False),
    *_doc_columns(),
)

registrations = sa.Table(
    "registrations",
    metadata,
    sa.Column("key_lower", key_text(), primary_key=True),
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("group_id", key_text(), nullable=True),  # case-folded enrollment group ID
    sa.Column("device_id", sa.Text(), nullable=True),
    sa.Column("assigned_hub", sa.Text(), nullable=True),
    *_doc_columns(),
    # the service API lists a group's registrations; nothing reads them by hub (0003)
    sa.Index(None, "group_id", "key_lower"),
)

operations = sa.Table(
    "operations",
    metadata,
    sa.Column("operation_id", sa.Text(), primary_key=True),
    sa.Column("registration_id", sa.Text(), nullable=False),  # case-folded
    *_doc_columns(),
    sa.Index(None, "created"),  # pruning old operations scans by age
)

hubs = sa.Table(
    "hubs",
    metadata,
    sa.Column("host_name", key_text(), primary_key=True),
    sa.Column("built_in", sa.Boolean(), nullable=False),
    sa.Column("connection_string", sa.Text(), nullable=True),
    sa.Column("allocation_weight", sa.Integer(), nullable=False),
    sa.Column("apply_allocation_policy", sa.Boolean(), nullable=False),
    sa.Column("location", sa.Text(), nullable=False),
    sa.Column("policies", JsonText(), nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("hub", sa.Text(), primary_key=True),
    sa.Column("device_id", key_text(), primary_key=True),  # case-sensitive, as in IoT Hub
    *_doc_columns(),
)

twins = sa.Table(
    "twins",
    metadata,
    sa.Column("hub", sa.Text(), primary_key=True),
    sa.Column("device_id", key_text(), primary_key=True),
    *_doc_columns(),
)

telemetry = sa.Table(
    "telemetry",
    metadata,
    # AUTOINCREMENT on SQLite so a seq is never reused after trimming the newest rows.
    sa.Column("seq", seq_type(), primary_key=True, autoincrement=True),
    sa.Column("hub", sa.Text(), nullable=False),
    sa.Column("device_id", sa.Text(), nullable=False),
    sa.Column("enqueued", UtcDateTime(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("properties", JsonText(), nullable=False),
    sa.Index(None, "hub", "seq"),
    sqlite_autoincrement=True,
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("hub", sa.Text(), primary_key=True),
    sa.Column("device_id", sa.Text(), primary_key=True),
    sa.Column("owner", sa.Text(), nullable=False),  # id of the instance holding the link
    sa.Column("connected_at", UtcDateTime(), nullable=False),
    sa.Index(None, "owner"),
)
