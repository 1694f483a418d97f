"""Migration 0011 (a dry run's preview record by record) keeps the previews stored before
it, and its downgrade goes back to one row a person; on a fresh database of each backend."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from optsync.store.db import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _rows(db: Database) -> list[tuple]:
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT run_id, direction, person_id, email, salesforce_id, object "
                    "FROM sync_run_preview ORDER BY direction, person_id, salesforce_id"
                )
            )
        ]


def test_stored_previews_survive_the_upgrade_and_the_downgrade(fresh: Database, downgrade):
    fresh.upgrade("0010")
    with fresh.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_runs (id, status, trigger, dry_run, started_at, report) "
                "VALUES (7, 'succeeded', 'manual', true, :now, '{}')"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO sync_run_preview (run_id, direction, person_id, email, "
                "salesforce_id, object) VALUES "
                "(7, 'pull', 1, 'a@example.com', NULL, NULL), "
                "(7, 'push', 2, 'b@example.com', '0035g0000000001AAA', 'Contact')"
            )
        )
    before = _rows(fresh)

    fresh.upgrade("0011")
    assert _rows(fresh) == before
    with fresh.engine.begin() as conn:  # now a person may have several records, or none
        conn.execute(
            text(
                "INSERT INTO sync_run_preview (run_id, direction, person_id, email, "
                "salesforce_id, object) VALUES "
                "(7, 'push', 2, 'b@example.com', '00Q5g0000000001AAA', 'Lead'), "
                "(7, 'pull', NULL, 'new@example.com', '0035g0000000009AAA', 'Contact')"
            )
        )
    assert fresh.current_revision() == "0011"

    downgrade(fresh, "0010")
    assert _rows(fresh) == before
