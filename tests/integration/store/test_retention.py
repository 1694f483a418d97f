"""Retention: old sent/cancelled pushes and old run failures go, everything that is work
or evidence stays (issue 12: prune on a documented schedule; the ledger is kept)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from optsync.cli.main import main
from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.store.models import (
    LedgerEntry,
    OutboxPush,
    SyncRun,
    SyncRunFailure,
    SyncRunPreview,
)
from optsync.store.retention import Pruned, prune

DAY = timedelta(days=1)


def unsubscribe(db, clock, email):
    with db.transaction() as s:
        return optouts.unsubscribe_email(
            s, email, source=Source.API, actor="t", now=clock()
        ).person.id


def test_prune_keeps_latest_pushes_open_work_failures_and_the_ledger(db, clock):
    a, b, c, d = (unsubscribe(db, clock, f"{n}@example.com") for n in "abcd")
    old = clock() - 40 * DAY
    with db.transaction() as s:
        # a: its first push cancelled by a re-subscribe long ago, then unsubscribed again
        optouts.resubscribe_by_id(s, a, source=Source.API, actor="t", now=clock(), reason="r")
        s.execute(update(OutboxPush).where(OutboxPush.person_id == a).values(settled_at=old))
        optouts.unsubscribe_by_id(s, a, source=Source.API, actor="t", now=clock())
        # d: an old sent push, then re-subscribed and unsubscribed again (new push open)
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == d)
            .values(state="sent", sent_at=old, settled_at=old, created_at=old)
        )
        optouts.resubscribe_by_id(s, d, source=Source.API, actor="t", now=clock(), reason="r")
        optouts.unsubscribe_by_id(s, d, source=Source.API, actor="t", now=clock())
        # b: its only push is old and sent: kept (latest); c: an old failure: kept
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == b)
            .values(state="sent", sent_at=old, settled_at=old, created_at=old)
        )
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == c)
            .values(state="failed", created_at=old, settled_at=old)
        )
        run_old = SyncRun(
            trigger="manual", status="succeeded", started_at=old, finished_at=old, report={}
        )
        run_new = SyncRun(
            trigger="manual",
            status="succeeded",
            started_at=clock() - DAY,
            finished_at=clock() - DAY,
            report={},
        )
        s.add_all([run_old, run_new])
        s.flush()
        for run in (run_old, run_new):
            s.add(SyncRunFailure(run_id=run.id, code="X", message="m"))
            for n in range(3):  # a dry run's records: several per person, or none
                s.add(
                    SyncRunPreview(
                        run_id=run.id,
                        direction="push",
                        person_id=None if n == 2 else a,
                        email="a@example.com",
                        salesforce_id=f"0035g000000000{n}AAA",
                    )
                )
        ledger_before = s.scalar(select(func.count()).select_from(LedgerEntry))
    with db.transaction() as s:
        # batches of 2: each rule's rows go in more than one statement
        done = prune(s, now=clock(), keep_pushes=30 * DAY, keep_run_failures=30 * DAY, batch=2)
    # a's old cancelled, d's old sent; the old run's failure and its three preview rows
    assert done == Pruned(pushes=2, run_failures=1, previews=3)
    with db.transaction() as s:
        left = set(s.execute(select(OutboxPush.person_id, OutboxPush.state)).all())
        assert left == {(a, "pending"), (b, "sent"), (c, "failed"), (d, "pending")}
        assert s.scalar(select(func.count()).select_from(SyncRunFailure)) == 1
        assert set(s.scalars(select(SyncRunPreview.run_id))) == {run_new.id}
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == ledger_before
    with db.transaction() as s:  # a second prune finds nothing
        again = prune(s, now=clock(), keep_pushes=30 * DAY, keep_run_failures=30 * DAY)
    assert again == Pruned(0, 0)


def test_db_prune_command(cli_env, capsys):
    assert main(["db", "prune"]) == 0
    assert "Deleted 0 old pushes and 0 old run failures." in capsys.readouterr().out
