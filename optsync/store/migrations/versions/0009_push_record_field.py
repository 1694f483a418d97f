"""push records remember the field they set

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

* ``push_records.field``: the API name of the field a record was set with (or tried).
  A push re-opened after the synced field was switched must set the new field on the
  records it had set with the old one, so "already set by this push" is per field.
  Existing rows take their push's field (NULL while unknown: such a record is set again,
  which is harmless).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_records") as batch:
        batch.add_column(sa.Column("field", sa.String(length=80), nullable=True))
    op.execute(
        "UPDATE push_records SET field = "
        "(SELECT outbox.field FROM outbox WHERE outbox.id = push_records.push_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("push_records") as batch:
        batch.drop_column("field")
