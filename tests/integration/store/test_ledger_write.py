"""The one write path's ledger rows keep exactly what they were given, on both databases
(PostgreSQL writes a change's rows as one JSON document: ``store.optouts._insert_ledger``):
text with quotes, backslashes, newlines and any script, nested evidence, microseconds,
a missing reason; each person gets the id of their own entry back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from optsync.domain.optout import EventKind, LedgerEvent, Source
from optsync.store import optouts
from optsync.store.models import LedgerEntry, Person

AT = datetime(2026, 12, 1, 12, 34, 56, 789012, tzinfo=UTC)


def _persons(db, n: int) -> list[int]:
    with db.transaction() as s:
        return list(
            s.scalars(
                insert(Person).returning(Person.id),
                [
                    {
                        "email": f"w{i}@example.com",
                        "unsubscribed": False,
                        "created_at": AT,
                        "updated_at": AT,
                    }
                    for i in range(n)
                ],
            )
        )


def test_ledger_rows_keep_their_text_evidence_and_time(db):
    ids = _persons(db, 3)
    texts = ['a "quoted" \\ back\\slash', "line one\nline two\ttab", None]
    evidence = [
        {"record_id": "0035g0000000001AAA", "nested": {"list": [1, "two", None], "ü": "✓"}},
        {"reason_choice": "Zu viele E-Mails", "quote": "'\"", "empty": {}},
        {},
    ]
    changes = [
        optouts.Change(
            pid,
            LedgerEvent(
                kind=EventKind.UNSUBSCRIBE,
                source=Source.API,
                actor="ops@example.com",
                at=AT + timedelta(microseconds=i),
                reason=texts[i],
                evidence=evidence[i],
            ),
        )
        for i, pid in enumerate(ids)
    ]
    with db.transaction() as s:
        changed = optouts.unsubscribe(s, changes, AT, push=False)
    with db.transaction() as s:
        rows = {e.person_id: e for e in s.scalars(select(LedgerEntry))}
        for c in changed:
            assert rows[c.person_id].id == c.ledger_id
        for i, pid in enumerate(ids):
            entry = rows[pid]
            assert (entry.kind, entry.source, entry.actor) == (
                "unsubscribe",
                "api",
                "ops@example.com",
            )
            assert entry.reason == texts[i]
            assert entry.evidence == evidence[i]
            assert entry.created_at == AT + timedelta(microseconds=i)


def test_a_time_in_another_zone_is_stored_as_the_same_instant_and_a_naive_one_refused(db):
    [a, b] = _persons(db, 2)
    berlin = AT.astimezone(timezone(timedelta(hours=1)))

    def change(pid: int, at: datetime) -> optouts.Change:
        return optouts.Change(
            pid, LedgerEvent(kind=EventKind.UNSUBSCRIBE, source=Source.API, actor="t", at=at)
        )

    with db.transaction() as s:
        optouts.unsubscribe(s, [change(a, berlin)], AT, push=False)
    with db.transaction() as s:
        assert s.scalar(select(LedgerEntry.created_at).where(LedgerEntry.person_id == a)) == AT
    with pytest.raises(Exception, match="naive datetime"), db.transaction() as s:
        optouts.unsubscribe(s, [change(b, AT.replace(tzinfo=None))], AT, push=False)
