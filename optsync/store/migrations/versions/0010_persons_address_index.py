"""an index for the Unsubscribes list sorted by address

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

* ``ix_persons_unsubscribed_email`` (``unsubscribed, email, id``): the list sorted by
  address, A to Z or Z to A (``WHERE unsubscribed ORDER BY email, id``, from the top or
  from a cursor), is read from the index in order. Before it SQLite read every
  unsubscribed person through ``ix_persons_unsubscribed`` and sorted them in a temporary
  B-tree for each page (about 200 ms at 100,000 persons); PostgreSQL filtered the whole
  ``uq_persons_email`` index by ``unsubscribed``, which is slow when few persons are.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("persons") as batch:
        batch.create_index(
            "ix_persons_unsubscribed_email", ["unsubscribed", "email", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("persons") as batch:
        batch.drop_index("ix_persons_unsubscribed_email")
