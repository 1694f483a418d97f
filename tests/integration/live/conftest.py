"""Fixtures for the live pull: persons linked to emulator records, sync settings on."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from optsync.clock import utcnow
from optsync.domain.ids import parse_person_id
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.sync_settings import update_settings
from optsync.store.db import Database
from optsync.store.models import LedgerEntry, Person


def link(db: Database, ids: list[str]) -> dict[str, int]:
    """One subscribed person per record id; returns ``record id -> person id``."""
    out = {}
    with db.transaction() as s:
        for n, sf_id in enumerate(ids):
            id18, kind = parse_person_id(sf_id)
            person, _ = upsert_person(
                s, PersonInput(n, f"p-{id18.lower()}@example.com", id18, kind.value), utcnow()
            )
            out[id18] = person.id
    return out


def turn_on(db: Database, **changes: object) -> None:
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True, **changes}, actor="test", now=utcnow())


def tick_in_salesforce(emu, record_id: str, value: bool = True, field: str = "HasOptedOutOfEmail"):
    """A Salesforce user (not optsync) sets the field."""
    return emu.control("PATCH", f"records/{record_id}", {field: value})


def unsubscribed(db: Database) -> set[str]:
    with db.transaction() as s:
        return set(
            s.scalars(select(Person.salesforce_id).where(Person.unsubscribed.is_(True))).all()
        )


def ledger_count(db: Database) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def later(seconds: float = 61) -> datetime:
    """A ``now`` a minute ahead, so a minute-granular window covers what just happened."""
    return utcnow() + timedelta(seconds=seconds)


@pytest.fixture
def field() -> str:
    return "HasOptedOutOfEmail"
