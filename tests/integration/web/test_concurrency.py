"""Simultaneous requests for the same person record one unsubscribe, not several."""

from __future__ import annotations

import threading

from optsync.domain.optout import Source
from optsync.services.bulk_unsubscribes import unsubscribe_many
from optsync.services.optouts import get_or_create_person, unsubscribe_by_id, unsubscribe_email
from optsync.services.transactions import in_transaction
from tests.integration.web.conftest import counts

THREADS = 8


def run_together(target) -> list[BaseException]:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait()
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_simultaneous_one_click_posts_write_one_ledger_entry(db, clock):
    with db.transaction() as s:
        pid = get_or_create_person(s, "ann@example.com", clock())[0].id

    def one_click() -> None:
        in_transaction(
            db,
            lambda s: unsubscribe_by_id(
                s, pid, source=Source.ONE_CLICK, actor="person", now=clock()
            ),
        )

    assert run_together(one_click) == []
    assert counts(db) == (1, 1, 1, 1)


def test_simultaneous_unsubscribes_of_a_new_address_make_one_person(db, clock):
    def by_email() -> None:
        in_transaction(
            db,
            lambda s: unsubscribe_email(
                s, "new@example.com", source=Source.API, actor="t", now=clock()
            ),
        )

    assert run_together(by_email) == []
    assert counts(db) == (1, 1, 1, 1)


def test_simultaneous_bulk_requests_count_each_address_once(db, clock):
    emails = [f"u{i}@example.com" for i in range(300)]
    reports = []

    def bulk() -> None:
        reports.append(
            unsubscribe_many(db, emails, source=Source.CSV, actor="t", now=clock(), chunk_size=50)
        )

    assert run_together(bulk) == []
    assert sum(r.new for r in reports) == 300
    assert counts(db) == (300, 300, 300, 300)
