"""sync health: notification settings and their dedup state, dry-run previews

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

* ``notification_settings``: SMTP and webhook settings (single row; secrets sealed).
* ``notification_events``: each failed run / spell of stuck pushes announced once, with
  its delivery state (dedup by a unique key).
* ``sync_run_preview``: every record a dry run would pull or push (the report lists the
  first 100; "all as CSV" reads this table).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column("smtp_host", sa.String(length=255), nullable=True),
        sa.Column("smtp_port", sa.Integer(), nullable=False),
        sa.Column("smtp_security", sa.String(length=8), nullable=False),
        sa.Column("smtp_username", sa.String(length=254), nullable=True),
        sa.Column("email_from", sa.String(length=254), nullable=True),
        sa.Column("email_to", sa.Text(), nullable=True),
        sa.Column("webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("webhook_timeout_s", sa.Integer(), nullable=False),
        sa.Column("webhook_retries", sa.Integer(), nullable=False),
        sa.Column("stuck_after_min", sa.Integer(), nullable=False),
        sa.Column("notify_resolved", sa.Boolean(), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secrets", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_notification_settings_singleton")),
        sa.CheckConstraint(
            "smtp_security IN ('none', 'starttls', 'tls')",
            name=op.f("ck_notification_settings_smtp_security"),
        ),
        sa.CheckConstraint(
            "smtp_port BETWEEN 1 AND 65535", name=op.f("ck_notification_settings_smtp_port")
        ),
        sa.CheckConstraint(
            "webhook_timeout_s BETWEEN 1 AND 60",
            name=op.f("ck_notification_settings_webhook_timeout"),
        ),
        sa.CheckConstraint(
            "webhook_retries BETWEEN 0 AND 5",
            name=op.f("ck_notification_settings_webhook_retries"),
        ),
        sa.CheckConstraint(
            "stuck_after_min BETWEEN 1 AND 1440",
            name=op.f("ck_notification_settings_stuck_after"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('run_failed', 'pushes_stuck', 'resolved')",
            name=op.f("ck_notification_events_kind"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed')", name=op.f("ck_notification_events_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
        sa.UniqueConstraint("key", name=op.f("uq_notification_events_key")),
    )
    op.create_index(
        "ix_notification_events_due", "notification_events", ["state", "next_attempt_at"]
    )
    op.create_index("ix_notification_events_kind", "notification_events", ["kind", "resolved_at"])
    op.create_table(
        "sync_run_preview",
        sa.Column("run_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("person_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("salesforce_id", sa.String(length=18), nullable=True),
        sa.Column("object", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "direction IN ('pull', 'push')", name=op.f("ck_sync_run_preview_direction")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_sync_run_preview_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "direction", "person_id", name=op.f("pk_sync_run_preview")
        ),
    )


def downgrade() -> None:
    op.drop_table("sync_run_preview")
    op.drop_index("ix_notification_events_kind", table_name="notification_events")
    op.drop_index("ix_notification_events_due", table_name="notification_events")
    op.drop_table("notification_events")
    op.drop_table("notification_settings")
