"""records per address: the Salesforce record mirror, pushes per record, the linking rule

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

* ``salesforce_records``: every Contact, Lead and Person Account optsync has seen, with its
  normalised address, its opt-out field values and its SystemModstamp.
* ``salesforce_mirror``: how far that mirror can be trusted (single row).
* ``push_records``: each record a push set or failed to set (a push fans out to every
  record of the address).
* ``sync_settings.link_rule`` (``contact_then_lead`` …) and ``sync_settings.suppress_unknown``.
* ``persons.salesforce_object``, ``sync_remote_optouts.object`` and
  ``live_pull_state.object`` accept ``Account`` (Person Accounts).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LINK_RULES = (
    "link_rule IN ('contact_then_lead', 'lead_then_contact', 'contact_only', 'lead_only', 'off')"
)
OBJECTS = ("'Contact', 'Lead'", "'Contact', 'Lead', 'Account'")
# (table, check name, column, nullable column)
OBJECT_CHECKS = (
    ("persons", "object_kind", "salesforce_object", True),
    ("sync_remote_optouts", "object_kind", "object", False),
    ("live_pull_state", "object", "object", False),
)


def _object_checks(objects: str) -> None:
    for table, name, column, nullable in OBJECT_CHECKS:
        condition = f"{column} IN ({objects})"
        if nullable:
            condition = f"{column} IS NULL OR {condition}"
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
            batch.create_check_constraint(name, condition)


def upgrade() -> None:
    with op.batch_alter_table("sync_settings") as batch:
        batch.add_column(
            sa.Column(
                "link_rule",
                sa.String(length=24),
                server_default="contact_then_lead",
                nullable=False,
            )
        )
        batch.add_column(
            sa.Column("suppress_unknown", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.create_check_constraint("link_rule", LINK_RULES)
    _object_checks(OBJECTS[1])
    op.create_table(
        "salesforce_records",
        sa.Column("record_id", sa.String(length=18), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("email_opt_out", sa.Boolean(), nullable=True),
        sa.Column("sales_opt_out", sa.Boolean(), nullable=True),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("system_modstamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"object IN ({OBJECTS[1]})", name=op.f("ck_salesforce_records_object_kind")
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_salesforce_records")),
    )
    op.create_index("ix_salesforce_records_email", "salesforce_records", ["email"])
    op.create_index("ix_salesforce_records_modstamp", "salesforce_records", ["system_modstamp"])
    op.create_table(
        "salesforce_mirror",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complete_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_salesforce_mirror_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_salesforce_mirror")),
    )
    op.create_table(
        "push_records",
        sa.Column("push_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_id", sa.String(length=18), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=80), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("fix", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"object IN ({OBJECTS[1]})", name=op.f("ck_push_records_object_kind")),
        sa.CheckConstraint("state IN ('sent', 'failed')", name=op.f("ck_push_records_state")),
        sa.ForeignKeyConstraint(
            ["push_id"],
            ["outbox.id"],
            name=op.f("fk_push_records_push_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("push_id", "record_id", name=op.f("pk_push_records")),
    )
    op.create_index("ix_push_records_state", "push_records", ["state", "push_id"])


def downgrade() -> None:
    op.drop_table("push_records")
    op.drop_table("salesforce_mirror")
    op.drop_index("ix_salesforce_records_modstamp", table_name="salesforce_records")
    op.drop_index("ix_salesforce_records_email", table_name="salesforce_records")
    op.drop_table("salesforce_records")
    # Person Account links and staging rows cannot be expressed before 0007
    op.execute(
        "UPDATE persons SET salesforce_id = NULL, salesforce_object = NULL "
        "WHERE salesforce_object = 'Account'"
    )
    op.execute("DELETE FROM sync_remote_optouts WHERE object = 'Account'")
    op.execute("DELETE FROM live_pull_state WHERE object = 'Account'")
    _object_checks(OBJECTS[0])
    with op.batch_alter_table("sync_settings") as batch:
        batch.drop_constraint(op.f("ck_sync_settings_link_rule"), type_="check")
        batch.drop_column("suppress_unknown")
        batch.drop_column("link_rule")
