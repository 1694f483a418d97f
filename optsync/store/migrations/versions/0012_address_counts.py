"""how many live records carry each address, kept by the database

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Every nightly run reports the org's duplicate addresses (addresses more than one live
record carries). It counted them with a ``GROUP BY`` over the whole mirror: 2.1 s of the
2.5 s diff of an incremental run at 1,000,000 records, 14.9 s at 10,000,000, the one part
of the nightly that still grew with the org instead of with the changes.

* ``salesforce_addresses`` (``email``, ``records``): the live records (not deleted) the
  mirror holds with that address. A row may say 0 (its records went or moved away).
  ``ix_salesforce_addresses_shared`` (partial, ``records > 1``) holds just the
  duplicates, so their total is read from it.
* Triggers on ``salesforce_records`` keep it, so every write of the mirror (upsert, marks
  of deletion, dropped PersonContacts, addresses a lookup no longer finds, and any
  written later) keeps it without a second code path: on PostgreSQL statement triggers
  with transition tables (one set-based upsert per statement: a chunk of 5,000 records is
  one statement), on SQLite row triggers. ``TRUNCATE`` fires none; it is only used by
  tests, which truncate both tables.
* The upgrade counts the records already mirrored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LIVE = "email IS NOT NULL AND NOT deleted"

# Address totals in email order, so two writers that touch the same addresses lock their
# counter rows in the same order (no deadlock between the nightly and the live pull).
_PG_APPLY = (
    "INSERT INTO salesforce_addresses AS a (email, records) "
    "SELECT email, sum(d) FROM ({deltas}) AS t GROUP BY email HAVING sum(d) <> 0 "
    "ORDER BY email "
    "ON CONFLICT (email) DO UPDATE SET records = a.records + excluded.records"
)
_PG_OLD = f"SELECT email, -1 AS d FROM old_rows WHERE {LIVE}"
_PG_NEW = f"SELECT email, 1 AS d FROM new_rows WHERE {LIVE}"

_PG_FUNCTIONS = {
    "salesforce_addresses_inserted": _PG_APPLY.format(deltas=_PG_NEW),
    "salesforce_addresses_updated": _PG_APPLY.format(deltas=f"{_PG_OLD} UNION ALL {_PG_NEW}"),
    "salesforce_addresses_deleted": _PG_APPLY.format(deltas=_PG_OLD),
}
_PG_TRIGGERS = {
    "INSERT": ("salesforce_addresses_inserted", "NEW TABLE AS new_rows"),
    "UPDATE": ("salesforce_addresses_updated", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "DELETE": ("salesforce_addresses_deleted", "OLD TABLE AS old_rows"),
}

_SQLITE_ADD = (
    "INSERT INTO salesforce_addresses (email, records) SELECT NEW.email, 1 "
    "WHERE NEW.email IS NOT NULL AND NOT NEW.deleted "
    "ON CONFLICT (email) DO UPDATE SET records = records + 1;"
)
_SQLITE_REMOVE = (
    "UPDATE salesforce_addresses SET records = records - 1 "
    "WHERE email = OLD.email AND OLD.email IS NOT NULL AND NOT OLD.deleted;"
)
_SQLITE_TRIGGERS = {
    "salesforce_records_inserted": f"AFTER INSERT ON salesforce_records BEGIN {_SQLITE_ADD} END",
    "salesforce_records_updated": (
        "AFTER UPDATE OF email, deleted ON salesforce_records "
        "WHEN NEW.email IS NOT OLD.email OR NEW.deleted IS NOT OLD.deleted "
        f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END"
    ),
    "salesforce_records_deleted": f"AFTER DELETE ON salesforce_records BEGIN {_SQLITE_REMOVE} END",
}


def upgrade() -> None:
    op.create_table(
        "salesforce_addresses",
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_salesforce_addresses")),
    )
    op.create_index(
        "ix_salesforce_addresses_shared",
        "salesforce_addresses",
        ["email"],
        postgresql_where=sa.text("records > 1"),
        sqlite_where=sa.text("records > 1"),
    )
    op.execute(
        "INSERT INTO salesforce_addresses (email, records) "
        f"SELECT email, count(*) FROM salesforce_records WHERE {LIVE} GROUP BY email"
    )
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {body}; RETURN NULL; END $$"
            )
        for event, (function, tables) in _PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {function} AFTER {event} ON salesforce_records "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    else:
        for name, body in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function, _ in _PG_TRIGGERS.values():
            op.execute(f"DROP TRIGGER {function} ON salesforce_records")
            op.execute(f"DROP FUNCTION {function}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_salesforce_addresses_shared", table_name="salesforce_addresses")
    op.drop_table("salesforce_addresses")
