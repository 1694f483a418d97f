"""Migrations are proven: upgrade from empty equals the models, on both databases."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DatabaseError

from optsync.errors import DatabaseNotMigratedError
from optsync.store.db import Database
from optsync.store.models import Base, LedgerEntry, Person


def test_upgraded_schema_equals_the_models(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_current_database_is_accepted(db):
    db.require_current()
    assert db.current_revision() == db.head_revision()


def test_empty_database_is_refused_with_the_fix(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DatabaseNotMigratedError, match="optsync db upgrade"):
        db.require_current()
    db.upgrade()
    db.require_current()
    db.upgrade()  # idempotent


def test_ledger_is_append_only(db, clock):
    with db.transaction() as s:
        pid = s.execute(
            insert(Person)
            .values(
                email="a@example.com", unsubscribed=True, created_at=clock(), updated_at=clock()
            )
            .returning(Person.id)
        ).scalar_one()
        s.add(
            LedgerEntry(
                person_id=pid,
                kind="unsubscribe",
                source="api",
                actor="t",
                evidence={},
                created_at=clock(),
            )
        )
    with pytest.raises(DatabaseError, match="append-only"), db.transaction() as s:
        s.execute(update(LedgerEntry).values(reason="changed"))
    with pytest.raises(DatabaseError, match="append-only"), db.transaction() as s:
        s.execute(text("DELETE FROM ledger"))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger")).scalar_one() == 1


def test_person_link_must_be_complete(db, clock):
    with pytest.raises(DatabaseError), db.transaction() as s:
        s.execute(
            insert(Person).values(
                email="b@example.com",
                salesforce_id="003000000000001AAA",
                unsubscribed=False,
                created_at=clock(),
                updated_at=clock(),
            )
        )
