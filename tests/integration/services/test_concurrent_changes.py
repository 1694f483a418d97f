"""Concurrent opt-out changes of one person write one ledger entry (issue 12, one write
path: the lock lives in it for both directions). Before this, six parallel CLI
re-subscribes of one person wrote several ledger entries on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.transactions import in_transaction
from optsync.store.models import LedgerEntry, OutboxPush

PARALLEL = 6


def race(db, work) -> list[BaseException]:
    barrier = threading.Barrier(PARALLEL)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            in_transaction(db, work)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def kinds(db, kind: str) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).where(LedgerEntry.kind == kind)) or 0)


@pytest.mark.parametrize("rounds", [3])
def test_parallel_resubscribes_and_unsubscribes_write_one_entry_each(db, clock, rounds):
    email = "race@example.com"
    for n in range(1, rounds + 1):
        errors = race(
            db,
            lambda s: optouts.unsubscribe_email(
                s, email, source=Source.CLI, actor="cli", now=clock()
            ),
        )
        assert errors == []
        assert kinds(db, "unsubscribe") == n
        errors = race(
            db,
            lambda s: optouts.resubscribe_email(
                s, email, source=Source.CLI, actor="cli", now=clock(), reason="asked"
            ),
        )
        assert errors == []
        assert kinds(db, "resubscribe") == n
    with db.transaction() as s:
        states = list(s.scalars(select(OutboxPush.state)))
    assert states == ["cancelled"] * rounds
