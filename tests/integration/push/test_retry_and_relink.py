"""Failed pushes can be retried after their fix, and a relinked person's opt-out follows
them to the new record (issue 12.2). Before this, nothing re-queued a failed push, and a
person relinked after their push was sent never had the new record set."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from optsync.cli.main import main
from optsync.domain.optout import Source
from optsync.errors import UsageError
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.push_retry import failures_by_code, retry_pushes
from optsync.store.models import OutboxPush, Person
from tests.integration.push.conftest import link_and_unsubscribe, record


def latest_state(db, person_id: int) -> str:
    with db.transaction() as s:
        return s.scalars(
            select(OutboxPush.state)
            .where(OutboxPush.person_id == person_id)
            .order_by(OutboxPush.id.desc())
        ).first()


def fail_on_read_only_field(emu, db, clock, pusher, n=2):
    ids = emu.seed(contacts=n)["contact_ids"]
    pids = link_and_unsubscribe(db, clock, ids)
    emu.control("PUT", "fields/Contact/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    report = pusher.drain()
    assert report.sent == 0 and sum(report.failed.values()) == n
    emu.control("PUT", "fields/Contact/HasOptedOutOfEmail", {"visible": True, "updateable": True})
    return ids, pids


def test_failed_pushes_are_sent_after_a_retry_by_code(emu, db, clock, pusher):
    ids, pids = fail_on_read_only_field(emu, db, clock, pusher)
    with db.transaction() as s:
        [(code, fix, count)] = failures_by_code(s)
    assert count == 2 and fix
    assert pusher.drain().sent == 0  # nothing re-sends a failed push on its own
    with db.transaction() as s:
        result = retry_pushes(s, now=clock(), codes=[code])
    assert (result.reopened, result.still_failed) == (2, 0)
    assert pusher.drain().sent == 2
    assert all(record(emu, i)["HasOptedOutOfEmail"] is True for i in ids)
    assert {latest_state(db, p) for p in pids} == {"sent"}
    with db.transaction() as s:  # a retry of nothing failed changes nothing
        assert retry_pushes(s, now=clock(), all_failed=True).reopened == 0


def test_retry_by_email_touches_only_that_person(emu, db, clock, pusher):
    _ids, pids = fail_on_read_only_field(emu, db, clock, pusher)
    with db.transaction() as s:
        email = s.get(Person, pids[0]).email
        assert retry_pushes(s, now=clock(), emails=[email.upper()]).reopened == 1
    assert pusher.drain().sent == 1
    assert [latest_state(db, p) for p in pids] == ["sent", "failed"]


def test_retry_needs_a_filter_and_names_bad_input(db, clock):
    with db.transaction() as s, pytest.raises(UsageError, match="--all-failed"):
        retry_pushes(s, now=clock())
    with db.transaction() as s, pytest.raises(UsageError, match="code"):
        retry_pushes(s, now=clock(), codes=["DROP TABLE"])
    with db.transaction() as s, pytest.raises(UsageError, match="no person"):
        retry_pushes(s, now=clock(), emails=["nobody@example.com"])


def test_a_resubscribed_persons_failed_push_is_not_retried(emu, db, clock, pusher):
    _ids, pids = fail_on_read_only_field(emu, db, clock, pusher, n=1)
    with db.transaction() as s:
        optouts.resubscribe_by_id(
            s, pids[0], source=Source.ADMIN, actor="a", now=clock(), reason="asked"
        )
        assert retry_pushes(s, now=clock(), all_failed=True).reopened == 0


def test_cli_push_retry(emu, db, clock, pusher, cli_env, capsys):
    _ids, pids = fail_on_read_only_field(emu, db, clock, pusher)
    assert main(["push", "retry"]) == 1
    assert "--all-failed" in capsys.readouterr().err
    assert main(["push", "retry", "--code", "NO_SUCH_CODE", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"reopened": 0, "still_failed": 2}
    assert main(["push", "retry", "--all-failed"]) == 0
    assert "2 failed pushes queued again; 0 still failed." in capsys.readouterr().out
    assert {latest_state(db, p) for p in pids} == {"pending"}


def test_relinking_an_unsubscribed_person_pushes_to_the_new_record(emu, db, clock, pusher):
    old, new = emu.seed(contacts=2)["contact_ids"]
    [pid] = link_and_unsubscribe(db, clock, [old])
    assert pusher.drain().sent == 1
    with db.transaction() as s:
        email = s.get(Person, pid).email
        upsert_person(s, PersonInput(1, email, new, "Contact"), clock())
    assert latest_state(db, pid) == "pending"
    assert pusher.drain().sent == 1
    assert record(emu, new)["HasOptedOutOfEmail"] is True


def test_relinking_a_subscribed_person_pushes_nothing(emu, db, clock, pusher):
    old, new = emu.seed(contacts=2)["contact_ids"]
    [pid] = link_and_unsubscribe(db, clock, [old], unsubscribe=False)
    with db.transaction() as s:
        email = s.get(Person, pid).email
        upsert_person(s, PersonInput(1, email, new, "Contact"), clock())
    assert latest_state(db, pid) is None
    assert pusher.drain().claimed == 0


def test_relinking_a_person_whose_push_failed_reopens_it_for_the_new_record(emu, db, clock, pusher):
    bad, good = emu.seed(contacts=2)["contact_ids"]
    [pid] = link_and_unsubscribe(db, clock, [bad])
    emu.control("DELETE", f"records/{bad}")
    pusher.drain()
    assert latest_state(db, pid) == "failed"
    with db.transaction() as s:
        email = s.get(Person, pid).email
        upsert_person(s, PersonInput(1, email, good, "Contact"), clock())
    assert pusher.drain().sent == 1
    assert record(emu, good)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        assert len(s.scalars(select(OutboxPush).where(OutboxPush.person_id == pid)).all()) == 1


def test_a_transient_failure_waits_at_least_the_answers_retry_after(
    emu, db, clock, pusher, gateway
):
    """The emulator's faults are half 503s with ``Retry-After: 1`` and half row locks
    without it; the pusher's own backoff here is at most 0.5 s (plus jitter) for a first
    failure, so only honouring the header puts a 503's retry a second out."""
    [sf_id] = emu.seed(contacts=1)["contact_ids"]
    [pid] = link_and_unsubscribe(db, clock, [sf_id])
    gateway.connect()
    seen: set[str] = set()
    for _ in range(40):
        emu.settings(fault_rate=1.0)
        try:
            assert pusher.drain().retried == 1
        finally:
            emu.settings(fault_rate=0.0)
        with db.transaction() as s:
            row = s.scalars(select(OutboxPush).where(OutboxPush.person_id == pid)).one()
            wait = (row.next_attempt_at - clock()).total_seconds()
            seen.add(row.last_error_code)
            if row.last_error_code == "SERVER_UNAVAILABLE":
                assert wait >= 1.0
            # due again now, attempts back to one, for the next round
            row.next_attempt_at, row.attempts = clock(), 0
        if "SERVER_UNAVAILABLE" in seen:
            break
    assert "SERVER_UNAVAILABLE" in seen
