"""The public endpoints' group commit: requests that arrive together share a transaction,
none is answered before its commit, and one failure answers only its own request."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from optsync.domain.optout import Source
from optsync.services import bulk_unsubscribes
from optsync.services.bulk_unsubscribes import ByIdOutcome, ByIdRequest
from optsync.services.optouts import get_or_create_person
from optsync.store.models import LedgerEntry
from optsync.web import batching
from optsync.web.batching import GroupCommit
from tests.integration.web.conftest import counts, run_async


def people(db, clock, n: int) -> list[int]:
    with db.transaction() as s:
        return [get_or_create_person(s, f"p{i}@example.com", clock())[0].id for i in range(n)]


def request(pid: int) -> ByIdRequest:
    return ByIdRequest(pid, Source.ONE_CLICK, f"person:{pid}", {"ip": "192.0.2.1"})


async def submit_all(group: GroupCommit, pids: list[int]) -> list[ByIdOutcome | BaseException]:
    return await asyncio.gather(*(group.submit(request(p)) for p in pids), return_exceptions=True)


def test_simultaneous_requests_share_transactions_and_all_are_recorded(db, clock):
    pids = people(db, clock, 60)
    group = GroupCommit(db, clock, max_batch=25)
    outcomes = run_async(submit_all(group, pids))
    assert [(o.email, o.changed) for o in outcomes] == [
        (f"p{i}@example.com", True) for i in range(60)
    ]
    assert counts(db) == (60, 60, 60, 60)
    with db.transaction() as s:
        entries = dict(s.execute(select(LedgerEntry.person_id, LedgerEntry.id)).all())
    # each request learns the ledger entry it wrote (the page's undo is bound to it)
    assert [o.ledger_id for o in outcomes] == [entries[pid] for pid in pids]
    # all 60 were waiting before the first commit began: batches of at most 25
    assert group.batches == 3


def test_a_lone_request_commits_at_once_and_repeats_are_harmless(db, clock):
    (pid,) = people(db, clock, 1)
    group = GroupCommit(db, clock)

    async def twice() -> list[ByIdOutcome]:
        return [await group.submit(request(pid)), await group.submit(request(pid))]

    first, again = run_async(twice())
    assert (first.email, first.changed, again) == (
        "p0@example.com",
        True,
        ByIdOutcome("p0@example.com", False, None),
    )
    assert first.ledger_id is not None
    assert group.batches == 2
    assert counts(db) == (1, 1, 1, 1)


def test_a_failed_batch_is_committed_request_by_request(db, clock, monkeypatch):
    pids = people(db, clock, 10)
    real = bulk_unsubscribes.unsubscribe_ids

    def refuse_batches(session, requests, *, now):
        if len(requests) > 1:
            raise RuntimeError("simulated failure of a multi-row statement")
        return real(session, requests, now=now)

    monkeypatch.setattr(batching, "unsubscribe_ids", refuse_batches)
    group = GroupCommit(db, clock)
    outcomes = run_async(submit_all(group, pids))
    assert all(isinstance(o, ByIdOutcome) and o.changed for o in outcomes), outcomes
    assert group.batches == 10
    assert counts(db) == (10, 10, 10, 10)


def test_one_failing_request_fails_alone(db, clock, monkeypatch):
    pids = people(db, clock, 5)
    real = bulk_unsubscribes.unsubscribe_ids
    poisoned = pids[2]

    def fail_for_one(session, requests, *, now):
        if any(r.person_id == poisoned for r in requests):
            raise RuntimeError("simulated database error for one row")
        return real(session, requests, now=now)

    monkeypatch.setattr(batching, "unsubscribe_ids", fail_for_one)
    outcomes = run_async(submit_all(GroupCommit(db, clock), pids))
    assert isinstance(outcomes[2], RuntimeError)
    assert [o.changed for i, o in enumerate(outcomes) if i != 2] == [True] * 4  # type: ignore[union-attr]
    assert counts(db) == (5, 4, 4, 4)  # the poisoned request's transaction left nothing


def test_a_cancelled_request_is_still_committed(db, clock):
    """A client that hangs up after POSTing has still asked to stop: the commit stands."""
    first, second = people(db, clock, 2)
    group = GroupCommit(db, clock)

    async def scenario() -> ByIdOutcome:
        leaving = asyncio.create_task(group.submit(request(first)))
        staying = asyncio.create_task(group.submit(request(second)))
        await asyncio.sleep(0)  # both queued
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    assert run_async(scenario()).changed
    assert counts(db) == (2, 2, 2, 2)


def test_each_event_loop_starts_afresh(db, clock):
    """Test clients run each app on loops of their own; one group serves them in turn."""
    pids = people(db, clock, 4)
    group = GroupCommit(db, clock)
    for pid in pids:
        assert run_async(group.submit(request(pid))).changed
    assert counts(db) == (4, 4, 4, 4)
