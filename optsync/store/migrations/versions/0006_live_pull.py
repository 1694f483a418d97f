"""live pull: Change Data Capture replay ids, poll cursors, the subscriber lease, the mode

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

* ``sync_settings.live_pull`` (``auto``, ``cdc``, ``poll``, ``off``) and
  ``sync_settings.poll_interval_s`` (15-3600 s, default 60).
* ``live_pull_state``: one row per object (Contact, Lead): replay id, last commit time,
  poll cursor, mode and status shown on the Integrations tab.
* ``live_pull_lease``: the single row that names the one worker allowed to subscribe.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_settings") as batch:
        batch.add_column(
            sa.Column("live_pull", sa.String(length=8), server_default="auto", nullable=False)
        )
        batch.add_column(
            sa.Column("poll_interval_s", sa.Integer(), server_default="60", nullable=False)
        )
        batch.create_check_constraint(
            "live_pull_mode", "live_pull IN ('auto', 'cdc', 'poll', 'off')"
        )
        batch.create_check_constraint("poll_interval", "poll_interval_s BETWEEN 15 AND 3600")
    op.create_table(
        "live_pull_state",
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("replay_id", sa.LargeBinary(), nullable=True),
        sa.Column("last_commit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("poll_cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("object IN ('Contact', 'Lead')", name=op.f("ck_live_pull_state_object")),
        sa.CheckConstraint("mode IN ('cdc', 'poll')", name=op.f("ck_live_pull_state_mode")),
        sa.PrimaryKeyConstraint("object", name=op.f("pk_live_pull_state")),
    )
    op.create_table(
        "live_pull_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_live_pull_lease_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_pull_lease")),
    )


def downgrade() -> None:
    op.drop_table("live_pull_lease")
    op.drop_table("live_pull_state")
    with op.batch_alter_table("sync_settings") as batch:
        batch.drop_constraint(op.f("ck_sync_settings_poll_interval"), type_="check")
        batch.drop_constraint(op.f("ck_sync_settings_live_pull_mode"), type_="check")
        batch.drop_column("poll_interval_s")
        batch.drop_column("live_pull")
