"""one open push per person, cancelled pushes, the sync's switch-on time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

* ``outbox.state`` gains ``cancelled`` (a re-subscribe cancels the open push) and
  ``outbox.settled_at`` records when a push was settled or cancelled.
* ``uq_outbox_one_open``: at most one pending / in-flight / not-linked push per person.
  Duplicates left by older versions are folded first: the oldest open push of a person
  stays, later ones become ``cancelled``.
* ``sync_runs.ledger_watermark``: the last ledger entry when a run began; its pull leaves
  alone persons whose ledger moved on after that (the run's view of Salesforce is older).
* indexes for the Unsubscribes listing, the activity chart, a person's latest push and the
  sync's push diff; the unused ``sync_cursors`` table is dropped.
* ``sync_settings.enabled_at``: when the sync was switched on, so that editing the
  schedule or the zone no longer moves the schedule's start (a missed night still runs).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "state IN ('pending', 'in_flight', 'not_linked')"
OLD_STATES = "state IN ('pending', 'in_flight', 'sent', 'failed', 'not_linked')"
INDEXES = (
    ("ix_persons_unsubscribed_at", "persons", ["unsubscribed", "unsubscribed_at"]),
    ("ix_persons_unsubscribed_record", "persons", ["unsubscribed", "salesforce_id"]),
    ("ix_ledger_kind_time", "ledger", ["kind", "created_at"]),
    ("ix_outbox_person_latest", "outbox", ["person_id", "id"]),
    ("ix_outbox_state_sent", "outbox", ["state", "sent_at"]),
    ("ix_outbox_state_created", "outbox", ["state", "created_at"]),
)
NEW_STATES = "state IN ('pending', 'in_flight', 'sent', 'failed', 'not_linked', 'cancelled')"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint("state", NEW_STATES)
    op.execute(
        "UPDATE outbox SET state = 'cancelled', claimed_by = NULL, claimed_until = NULL "
        f"WHERE {OPEN} AND id NOT IN "
        f"(SELECT MIN(id) FROM outbox WHERE {OPEN} GROUP BY person_id)"
    )
    op.create_index(
        "uq_outbox_one_open",
        "outbox",
        ["person_id"],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    with op.batch_alter_table("sync_settings") as batch:
        batch.add_column(sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE sync_settings SET enabled_at = updated_at WHERE sync_enabled")
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("ledger_watermark", sa.BigInteger(), nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.drop_table("sync_cursors")


def downgrade() -> None:
    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursors")),
    )
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("ledger_watermark")
    with op.batch_alter_table("sync_settings") as batch:
        batch.drop_column("enabled_at")
    op.drop_index("uq_outbox_one_open", table_name="outbox")
    op.execute("UPDATE outbox SET state = 'failed' WHERE state = 'cancelled'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint("state", OLD_STATES)
        batch.drop_column("settled_at")
