"""``unsubscribe_ids``: the set-based write behind the public endpoints' group commit.

It must leave exactly what the one-at-a-time path (``unsubscribe_by_id``) leaves: state,
one ledger entry with the request's own evidence, one open push."""

from __future__ import annotations

import threading

from sqlalchemy import select

from optsync.domain.optout import Source
from optsync.services.bulk_unsubscribes import ByIdOutcome, ByIdRequest, unsubscribe_ids
from optsync.services.optouts import get_or_create_person, unsubscribe_by_id
from optsync.services.transactions import in_transaction
from optsync.store.models import LedgerEntry, OutboxPush, Person
from tests.integration.web.conftest import counts


def people(db, clock, n: int, linked: bool = True) -> list[int]:
    with db.transaction() as s:
        ids = []
        for i in range(n):
            person = get_or_create_person(s, f"p{i}@example.com", clock())[0]
            if linked:
                person.salesforce_id = f"003{i:015d}"
                person.salesforce_object = "Contact"
            ids.append(person.id)
        return ids


def request(pid: int, source: Source = Source.ONE_CLICK, ip: str = "192.0.2.1") -> ByIdRequest:
    return ByIdRequest(pid, source, f"person:{pid}", {"ip": ip, "user_agent": "ua"})


def run(db, clock, requests: list[ByIdRequest]) -> list[ByIdOutcome]:
    return in_transaction(db, lambda s: unsubscribe_ids(s, requests, now=clock()))


def test_each_person_gets_state_ledger_entry_with_its_own_evidence_and_a_push(db, clock):
    ids = people(db, clock, 3)
    outcomes = run(db, clock, [request(pid, ip=f"192.0.2.{n}") for n, pid in enumerate(ids)])
    assert [(o.email, o.changed) for o in outcomes] == [
        (f"p{i}@example.com", True) for i in range(3)
    ]
    with db.transaction() as s:
        persons = s.scalars(select(Person).order_by(Person.id)).all()
        assert all(p.unsubscribed and p.unsubscribe_source == "one_click" for p in persons)
        assert all(p.unsubscribed_at == clock() for p in persons)
        entries = s.scalars(select(LedgerEntry).order_by(LedgerEntry.person_id)).all()
        assert [(e.person_id, e.kind, e.source, e.actor) for e in entries] == [
            (pid, "unsubscribe", "one_click", f"person:{pid}") for pid in ids
        ]
        assert [e.evidence["ip"] for e in entries] == ["192.0.2.0", "192.0.2.1", "192.0.2.2"]
        assert [o.ledger_id for o in outcomes] == [e.id for e in entries]
        pushes = s.scalars(select(OutboxPush).order_by(OutboxPush.person_id)).all()
        assert [(p.person_id, p.state) for p in pushes] == [(pid, "pending") for pid in ids]


def test_mixed_sources_keep_their_own_source(db, clock):
    page, one_click = people(db, clock, 2)
    run(db, clock, [request(page, Source.PAGE), request(one_click, Source.ONE_CLICK)])
    with db.transaction() as s:
        sources = dict(s.execute(select(LedgerEntry.person_id, LedgerEntry.source)).all())
        state = dict(s.execute(select(Person.id, Person.unsubscribe_source)).all())
    assert sources == state == {page: "page", one_click: "one_click"}


def test_a_person_twice_in_one_batch_is_changed_once_by_the_first(db, clock):
    (pid,) = people(db, clock, 1)
    outcomes = run(db, clock, [request(pid, Source.PAGE), request(pid, Source.ONE_CLICK)])
    with db.transaction() as s:
        assert s.scalar(select(LedgerEntry.source)) == "page"
        entry_id = s.scalar(select(LedgerEntry.id))
    assert outcomes == [
        ByIdOutcome("p0@example.com", True, entry_id),
        ByIdOutcome("p0@example.com", False, None),
    ]
    assert counts(db) == (1, 1, 1, 1)


def test_repeats_and_unknown_ids_change_nothing(db, clock):
    (pid,) = people(db, clock, 1)
    run(db, clock, [request(pid)])
    before = counts(db)
    outcomes = run(db, clock, [request(pid), request(pid + 1000)])
    assert outcomes == [ByIdOutcome("p0@example.com", False), ByIdOutcome(None, False)]
    assert counts(db) == before


def test_unlinked_persons_wait_and_an_open_push_is_not_doubled(db, clock):
    unlinked = people(db, clock, 1, linked=False)[0]
    with db.transaction() as s:  # a push still open from before a re-subscribe
        s.add(
            OutboxPush(
                person_id=unlinked,
                state="not_linked",
                attempts=0,
                next_attempt_at=clock(),
                created_at=clock(),
            )
        )
    run(db, clock, [request(unlinked)])
    with db.transaction() as s:
        assert s.scalars(select(OutboxPush.state)).all() == ["not_linked"]


def test_same_result_as_one_at_a_time(db, clock):
    ids = people(db, clock, 4)
    run(db, clock, [request(ids[0]), request(ids[1])])
    for pid in ids[2:]:
        in_transaction(
            db,
            lambda s, pid=pid: unsubscribe_by_id(
                s,
                pid,
                source=Source.ONE_CLICK,
                actor=f"person:{pid}",
                now=clock(),
                evidence={"ip": "192.0.2.1", "user_agent": "ua"},
            ),
        )
    with db.transaction() as s:
        rows = s.execute(
            select(
                LedgerEntry.kind,
                LedgerEntry.source,
                LedgerEntry.evidence,
                LedgerEntry.created_at,
                Person.unsubscribed,
                Person.unsubscribe_source,
                Person.unsubscribed_at,
                OutboxPush.state,
            )
            .join(Person, Person.id == LedgerEntry.person_id)
            .join(OutboxPush, OutboxPush.person_id == Person.id)
            .order_by(Person.id)
        ).all()
    assert len(rows) == 4 and all(tuple(r) == tuple(rows[0]) for r in rows), rows


def test_concurrent_batches_over_the_same_persons_record_each_once(db, clock):
    """Two web processes' group commits racing over overlapping persons."""
    ids = people(db, clock, 40)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    changed: list[int] = []

    def batch(order: list[int]) -> None:
        barrier.wait()
        try:
            outcomes = run(db, clock, [request(pid) for pid in order])
            changed.extend(pid for pid, o in zip(order, outcomes, strict=True) if o.changed)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    orders = [ids, ids[::-1], ids[::2] + ids[1::2], ids[10:] + ids[:10]]
    threads = [threading.Thread(target=batch, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # No deadlock either: PostgreSQL locks the rows of one UPDATE in index (or physical)
    # order, whatever the order of the ids in the request.
    assert errors == []
    assert sorted(changed) == ids
    assert counts(db) == (40, 40, 40, 40)
