"""Drop ``ix_registrations_assigned_hub_device_id``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 00:00:00

No query ever read registrations by hub and device ID (the service API lists them by
enrollment group, and everything else finds one by registration ID), yet every registration
paid for the index: a fourth B-tree in the ``INSERT`` and a WAL frame more in its ``COMMIT``.
The columns stay, so putting the index back later needs no backfill.

Hand-written and self-contained, like 0001 and 0002.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_INDEX = "ix_registrations_assigned_hub_device_id"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="registrations")


def downgrade() -> None:
    op.create_index(_INDEX, "registrations", ["assigned_hub", "device_id"])
