"""Outbox claims: due rows only, leases that expire, and no double claims under concurrency."""

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.db import Database
from optsync.store.models import OutboxPush
from optsync.store.outbox import Settlement, claim_due, next_due_at, queue_stats, settle

LEASE = timedelta(seconds=60)


def seed(db, clock, n, linked=True):
    with db.transaction() as s:
        for i in range(n):
            email = f"p{i}@example.com"
            if linked:
                upsert_person(s, PersonInput(i, email, make_id("003", i), "Contact"), clock())
            optouts.unsubscribe_email(s, email, source=Source.API, actor="t", now=clock())


def test_claims_due_rows_in_order_up_to_the_limit(db, clock):
    seed(db, clock, 5)
    with db.transaction() as s:
        got = claim_due(s, worker="w1", now=clock(), limit=3, lease=LEASE)
    assert [c.attempts for c in got] == [1, 1, 1]
    assert all(c.salesforce_id and c.salesforce_object == "Contact" for c in got)
    with db.transaction() as s:
        rest = claim_due(s, worker="w2", now=clock(), limit=10, lease=LEASE)
    assert len(rest) == 2
    assert not {c.push_id for c in got} & {c.push_id for c in rest}


def test_future_retries_wait(db, clock):
    seed(db, clock, 1)
    with db.transaction() as s:
        [c] = claim_due(s, worker="w", now=clock(), limit=10, lease=LEASE)
        settle(
            s,
            "w",
            [
                Settlement(
                    c.push_id,
                    "pending",
                    next_attempt_at=clock() + timedelta(seconds=30),
                    code="UNABLE_TO_LOCK_ROW",
                )
            ],
            clock(),
        )
    with db.transaction() as s:
        assert claim_due(s, worker="w", now=clock(), limit=10, lease=LEASE) == []
        assert next_due_at(s) == clock() + timedelta(seconds=30)
    clock.advance(seconds=31)
    with db.transaction() as s:
        [again] = claim_due(s, worker="w", now=clock(), limit=10, lease=LEASE)
    assert again.attempts == 2


def test_expired_claim_is_taken_over_and_the_old_worker_cannot_settle_it(db, clock):
    """Leases run on the database's clock: a worker whose own clock is far ahead cannot
    take over a live claim; once the lease has really run out, any worker can."""
    seed(db, clock, 1)
    short = timedelta(seconds=0.5)
    with db.transaction() as s:
        [c] = claim_due(s, worker="dead", now=clock(), limit=10, lease=short)
    ahead = clock() + timedelta(minutes=10)  # w2's clock runs ten minutes fast
    with db.transaction() as s:
        assert claim_due(s, worker="w2", now=ahead, limit=10, lease=LEASE) == []
    time.sleep(0.6)
    with db.transaction() as s:
        [taken] = claim_due(s, worker="w2", now=clock(), limit=10, lease=LEASE)
    assert taken.push_id == c.push_id
    with db.transaction() as s:
        assert settle(s, "dead", [Settlement(c.push_id, "failed", code="X")], clock()) == 0
        assert (
            settle(
                s,
                "w2",
                [
                    Settlement(
                        c.push_id, "sent", field="HasOptedOutOfEmail", target_id=c.salesforce_id
                    )
                ],
                clock(),
            )
            == 1
        )
    with db.transaction() as s:
        row = s.scalars(select(OutboxPush)).one()
        stats = queue_stats(s, clock())
    assert (row.state, row.field, row.sent_at) == ("sent", "HasOptedOutOfEmail", clock())
    assert stats["sent"] == 1 and stats["oldest_open_age_s"] == 0


def test_concurrent_claimers_never_share_a_row(database_url, clock):
    db = Database(database_url)
    try:
        seed(db, clock, 300)
        claimed: dict[str, list[int]] = {}
        start = threading.Barrier(4)

        def worker(name: str) -> None:
            mine: list[int] = []
            start.wait()
            while True:
                with db.transaction() as s:
                    got = claim_due(s, worker=name, now=clock(), limit=7, lease=LEASE)
                if not got:
                    break
                mine += [c.push_id for c in got]
            claimed[name] = mine

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        every = [pid for ids in claimed.values() for pid in ids]
        assert len(every) == 300 and len(set(every)) == 300
    finally:
        db.dispose()
