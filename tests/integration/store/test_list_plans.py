"""The Unsubscribes list sorted by address reads an index in order (issue 17: ~200 ms at
100,000 persons on SQLite, which sorted every unsubscribed person in a temporary B-tree
for each page). ``ix_persons_unsubscribed_email`` (``unsubscribed, email, id``) serves
``WHERE unsubscribed ORDER BY email, id`` both ways, from the top and from a cursor.

SQLite only: its plan follows the schema, while PostgreSQL's follows the table's
statistics (a test table of a few rows is read whole); PostgreSQL's plans at 100,000
persons are in docs/benchmark-history.md."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import aliased

from optsync.services import unsubscribe_list as ul
from optsync.store.models import OutboxPush, Person

T0 = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only (see the module docstring): a migrated, empty database file."""
    path = tmp_path / "optsync.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def plan(db, sort: str, cursor: ul.Cursor | None, backwards: bool = False) -> str:
    query = ul.parse_query({"sort": sort}, tz="UTC", secret_key="k")
    push = aliased(OutboxPush)
    stmt = ul._ordered(ul._filtered(query, push), sort, cursor, backwards).limit(51)
    sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.engine.connect() as conn:
        return "\n".join(row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))


@pytest.mark.parametrize("sort", ["email", "email_desc"])
@pytest.mark.parametrize("at_cursor", [False, True])
@pytest.mark.parametrize("backwards", [False, True])
def test_the_address_sort_reads_the_index_in_order(db, sort, at_cursor, backwards):
    with db.transaction() as s:
        s.execute(
            insert(Person),
            [
                {
                    "email": f"p{i:04d}@example.com",
                    "unsubscribed": i % 4 != 0,
                    "unsubscribed_at": T0,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i in range(400)
            ],
        )
    # no ANALYZE: optsync never runs it on SQLite, so the planner goes by the schema
    cursor = ul.Cursor(sort, "p0200@example.com", 201) if at_cursor else None
    found = plan(db, sort, cursor, backwards)
    assert "ix_persons_unsubscribed_email" in found, found
    assert "TEMP B-TREE" not in found, found
