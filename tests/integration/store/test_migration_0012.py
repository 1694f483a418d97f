"""Migration 0012 (the per-address record counts) counts the records mirrored before it,
its triggers keep the counts from then on, and its downgrade removes both; on a fresh
database of each backend."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from optsync.store.db import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INSERT = (
    "INSERT INTO salesforce_records (record_id, object, email, converted, deleted, seen_at) "
    "VALUES (:id, 'Contact', :email, false, :deleted, :now)"
)


def _counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT email, records FROM salesforce_addresses"))
        return dict(rows.all())


def test_records_mirrored_before_are_counted_and_the_downgrade_removes_it(fresh, downgrade):
    fresh.upgrade("0011")
    with fresh.engine.begin() as conn:
        for rid, email, deleted in [
            ("003000000000001AAA", "ann@example.com", False),
            ("00Q000000000001AAA", "ann@example.com", False),
            ("003000000000002AAA", "bob@example.com", False),
            ("003000000000003AAA", "bob@example.com", True),
            ("003000000000004AAA", None, False),
        ]:
            conn.execute(text(INSERT), {"id": rid, "email": email, "deleted": deleted, "now": NOW})

    fresh.upgrade("0012")
    assert _counts(fresh) == {"ann@example.com": 2, "bob@example.com": 1}
    with fresh.engine.begin() as conn:  # and the triggers keep them
        conn.execute(
            text(INSERT),
            {"id": "003000000000005AAA", "email": "bob@example.com", "deleted": False, "now": NOW},
        )
        conn.execute(text("DELETE FROM salesforce_records WHERE record_id = '00Q000000000001AAA'"))
    assert _counts(fresh) == {"ann@example.com": 1, "bob@example.com": 2}

    downgrade(fresh, "0011")
    assert "salesforce_addresses" not in inspect(fresh.engine).get_table_names()
    with fresh.engine.begin() as conn:  # the mirror is written as before, with no trigger
        conn.execute(
            text(INSERT),
            {"id": "003000000000006AAA", "email": "cy@example.com", "deleted": False, "now": NOW},
        )
        conn.execute(text("UPDATE salesforce_records SET deleted = true"))
        conn.execute(text("DELETE FROM salesforce_records"))
