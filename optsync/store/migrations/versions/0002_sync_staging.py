"""sync staging: the remote opted-out set of a run, for the SQL diff

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_remote_optouts",
        sa.Column(
            "run_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("salesforce_id", sa.String(length=18), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "object IN ('Contact', 'Lead')", name=op.f("ck_sync_remote_optouts_object_kind")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["sync_runs.id"],
            name=op.f("fk_sync_remote_optouts_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "salesforce_id", name=op.f("pk_sync_remote_optouts")),
    )


def downgrade() -> None:
    op.drop_table("sync_remote_optouts")
