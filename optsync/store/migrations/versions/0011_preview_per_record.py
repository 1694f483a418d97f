"""a dry run's preview, record by record

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

``sync_run_preview`` was keyed by ``(run_id, direction, person_id)``: one row a person.
At address level a push sets every record of the address, and a pull can add an address
no person has (``suppress_unknown``), so the table could not hold what the run would do
and "All as CSV" listed fewer records than the counts beside it. It now has its own
``id`` key, ``person_id`` may be empty (an address the pull would add), and
``ix_sync_run_preview_listed`` serves the listing (by direction, person, record).
Stored previews are copied over unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD = "sync_run_preview_0010"
COLUMNS = "run_id, direction, person_id, email, salesforce_id, object"


def _set_aside() -> None:
    """Rename the table in use out of the way (PostgreSQL's index names are per schema,
    so its primary key is renamed with it)."""
    op.rename_table("sync_run_preview", OLD)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_sync_run_preview TO pk_{OLD}")


def _create(*, person_required: bool, key: sa.PrimaryKeyConstraint, with_id: bool) -> None:
    """The table as one revision or the other has it (the columns they share, the
    person column's nullability, the key)."""
    op.create_table(
        "sync_run_preview",
        *([sa.Column("id", BIG_ID, autoincrement=True, nullable=False)] if with_id else []),
        sa.Column("run_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("person_id", BIG_ID, autoincrement=False, nullable=not person_required),
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
        key,
    )


def upgrade() -> None:
    _set_aside()
    _create(
        person_required=False,
        key=sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_run_preview")),
        with_id=True,
    )
    op.create_index(
        "ix_sync_run_preview_listed",
        "sync_run_preview",
        ["run_id", "direction", "person_id", "salesforce_id"],
    )
    op.execute(
        f"INSERT INTO sync_run_preview ({COLUMNS}) SELECT {COLUMNS} FROM {OLD} "
        "ORDER BY run_id, direction, person_id"
    )
    op.drop_table(OLD)


def downgrade() -> None:
    """Back to one row a person: rows without a person are dropped, and of a person's
    records the lowest id is kept."""
    _set_aside()
    _create(
        person_required=True,
        key=sa.PrimaryKeyConstraint(
            "run_id", "direction", "person_id", name=op.f("pk_sync_run_preview")
        ),
        with_id=False,
    )
    op.execute(
        f"INSERT INTO sync_run_preview ({COLUMNS}) SELECT {COLUMNS} FROM {OLD} o "
        "WHERE o.person_id IS NOT NULL AND o.id = (SELECT min(k.id) FROM "
        f"{OLD} k WHERE k.run_id = o.run_id AND k.direction = o.direction "
        "AND k.person_id = o.person_id)"
    )
    op.drop_table(OLD)
