"""The soak's checks can fail: each invariant flags a broken case (fast; no soak run).

The store side runs on a real database (SQLite and PostgreSQL); the org side is a
hand-written record map, so each case is exactly the state the check must catch.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from optsync.domain.optout import Source
from optsync.services.optouts import resubscribe_email, unsubscribe_person
from optsync.store.models import OutboxPush, Person
from tests.soak import checks
from tests.soak.checks import EMAIL, SALES, FieldTimeline
from tests.soak.faults import parse, worker_command

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SID = "003000000000001AAA"


def _person(db, email: str, sid: str | None) -> int:
    with db.transaction() as s:
        p = Person(
            email=email,
            salesforce_id=sid,
            salesforce_object="Contact" if sid else None,
            unsubscribed=False,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(p)
        s.flush()
        unsubscribe_person(s, p, source=Source.API, actor="test", now=NOW)
        return p.id


def _settle(db, pid: int, **values) -> None:
    with db.transaction() as s:
        s.execute(update(OutboxPush).where(OutboxPush.person_id == pid).values(**values))


def test_a_sent_push_missing_in_salesforce_breaks_invariant_1(db):
    pid = _person(db, "a@example.org", SID)
    snap = checks.read_store(db)
    assert snap.persons[pid].unsubscribed and snap.latest_push(pid).state == "pending"
    seen: Counter[str] = Counter()
    assert checks.check_pushed_or_failed(snap, drained=False, checked=seen) == []
    assert seen["inv1_push_in_progress"] == 1
    assert checks.check_pushed_or_failed(snap, drained=True, checked=seen)  # still open

    _settle(db, pid, state="sent", field=EMAIL, target_id=SID, sent_at=NOW)
    snap = checks.read_store(db)
    snap.remote = {SID: {"Id": SID, EMAIL: False, SALES: True}}  # the wrong field is set
    broken = checks.check_pushed_or_failed(snap, drained=True, checked=seen)
    assert len(broken) == 1 and f"person {pid}" in broken[0]
    snap.remote[SID][EMAIL] = True
    assert checks.check_pushed_or_failed(snap, drained=True, checked=seen) == []


def test_the_successor_of_a_converted_lead_counts_and_a_failure_needs_its_fix(db):
    lead, contact = "00Q000000000001AAA", "003000000000009AAA"
    pid = _person(db, "b@example.org", lead)
    _settle(db, pid, state="sent", field=EMAIL, target_id=contact, sent_at=NOW)
    snap = checks.read_store(db)
    snap.remote = {
        lead: {"Id": lead, EMAIL: False, "ConvertedContactId": contact},
        contact: {"Id": contact, EMAIL: True},
    }
    assert checks.check_pushed_or_failed(snap, drained=True, checked=Counter()) == []

    _settle(db, pid, state="failed", last_error_code="ENTITY_IS_DELETED", fix=None)
    snap = checks.read_store(db)
    assert checks.check_pushed_or_failed(snap, drained=True, checked=Counter())
    _settle(db, pid, fix="Restore it from the Recycle Bin.")
    snap = checks.read_store(db)
    assert checks.check_pushed_or_failed(snap, drained=True, checked=Counter()) == []


def test_ledger_and_state_must_agree(db):
    pid = _person(db, "c@example.org", None)
    snap = checks.read_store(db)
    assert checks.check_ledger(snap, Counter()) == []
    with db.transaction() as s:
        resubscribe_email(s, "c@example.org", source=Source.CLI, actor="t", now=NOW, reason="asked")
    assert checks.check_ledger(checks.read_store(db), Counter()) == []
    with db.transaction() as s:
        s.execute(update(Person).where(Person.id == pid).values(unsubscribed=True))
    broken = checks.check_ledger(checks.read_store(db), Counter())
    assert broken and "unsubscribed=True" in broken[0]


def test_two_open_pushes_and_overlapping_runs_are_flagged():
    snap = checks.Snapshot(
        persons={},
        ledger={},
        runs=[],
        pushes={
            1: [
                checks.PushRow(1, "pending", None, None, None, None, None),
                checks.PushRow(2, "not_linked", None, None, None, None, None),
            ]
        },
    )
    assert checks.check_one_open_push(snap, Counter())
    runs = [
        checks.RunRow(1, "succeeded", EMAIL, None, NOW, NOW + timedelta(seconds=5), {}),
        checks.RunRow(2, "succeeded", EMAIL, None, NOW + timedelta(seconds=4), None, {}),
    ]
    snap.runs = runs
    assert checks.check_runs_never_overlap(snap, Counter())
    runs[1] = checks.RunRow(2, "failed", EMAIL, None, NOW + timedelta(seconds=6), NOW, {})
    assert checks.check_runs_never_overlap(snap, Counter()) == ["run #2 failed without a reason"]


def test_field_timeline_and_pushes_of_the_wrong_field():
    t = FieldTimeline(initial=EMAIL, grace=timedelta(seconds=5))
    t.switches.append((NOW, NOW + timedelta(seconds=1), SALES))
    assert t.at(NOW - timedelta(seconds=1)) == EMAIL
    assert t.at(NOW + timedelta(seconds=3)) is None
    assert t.at(NOW + timedelta(seconds=7)) == SALES
    late = NOW + timedelta(seconds=10)
    snap = checks.Snapshot(
        persons={},
        ledger={},
        runs=[],
        pushes={1: [checks.PushRow(1, "sent", EMAIL, SID, None, None, late)]},
    )
    broken = checks.check_field_in_force(snap, t, Counter())
    assert any("wrote HasOptedOutOfEmail" in b for b in broken)
    assert any("no push wrote Sales_Opt_Out__c" in b for b in broken)
    snap.pushes[1] = [checks.PushRow(1, "sent", SALES, SID, None, None, late)]
    assert checks.check_field_in_force(snap, t, Counter()) == []


def test_a_sync_runs_pushes_are_judged_by_the_runs_field_and_empty_windows_skipped():
    t = FieldTimeline(initial=EMAIL, grace=timedelta(seconds=5))
    t.switches.append((NOW, NOW + timedelta(seconds=1), SALES))
    late = NOW + timedelta(seconds=30)
    run = checks.RunRow(7, "succeeded", EMAIL, None, NOW - timedelta(minutes=1), late, {})
    made_by_run = checks.PushRow(1, "sent", EMAIL, SID, None, None, late, sent_by_run=7)
    snap = checks.Snapshot(persons={}, ledger={}, runs=[run], pushes={1: [made_by_run]})
    seen: Counter[str] = Counter()
    # the run started before the switch and synced Email Opt Out: its push is right, and
    # a window in which no worker pushed anything proves nothing either way
    assert checks.check_field_in_force(snap, t, seen) == []
    assert seen["inv8_switch_windows_without_pushes"] == 1
    snap.pushes[1] = [checks.PushRow(1, "sent", SALES, SID, None, None, late, sent_by_run=7)]
    assert any("made by run #7" in b for b in checks.check_field_in_force(snap, t, Counter()))


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "outcome"),
    [
        (0, '{"status": "succeeded"}', "", "succeeded"),
        (1, "", "error: a run is already in progress (#3).", "refused"),
        (1, '{"status": "failed", "error": "Setup check failed"}', "", "failed"),
        (1, '{"status": "failed", "error": null}', "", "unexplained"),
        (1, "", "Traceback ...", "unexplained"),
        (0, '{"status": "failed", "error": "x"}', "", "unexplained"),
    ],
)
def test_every_sync_start_has_a_stated_outcome(rc, stdout, stderr, outcome):
    proc = subprocess.CompletedProcess(["optsync"], rc, stdout, stderr)
    assert checks.sync_outcome(proc)[0] == outcome
    assert checks.sync_outcome(None)[0] == "unexplained"


def test_the_fault_switch_is_explicit():
    assert parse("drop-one-batch") == ("drop-one-batch", 0.0)
    assert parse("drop-one-batch:12") == ("drop-one-batch", 12.0)
    with pytest.raises(ValueError, match="known faults"):
        parse("drop-everything")
    cmd = worker_command("drop-one-batch", "/tmp/m", 1.0)
    assert cmd[1] == "-c" and "install('drop-one-batch', '/tmp/m', 1.0)" in cmd[2]


def _subscribed(db, email: str, sid: str) -> int:
    with db.transaction() as s:
        p = Person(
            email=email,
            salesforce_id=sid,
            salesforce_object="Contact",
            unsubscribed=False,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(p)
        s.flush()
        return p.id


def test_a_salesforce_opt_out_not_applied_before_the_final_sync_breaks_invariant_9(db):
    other = "003000000000002AAA"
    pid = _subscribed(db, "live@example.org", SID)
    gone = _subscribed(db, "gone@example.org", other)
    timeline = FieldTimeline(initial=EMAIL, grace=timedelta(seconds=5))
    ticks = [
        checks.Tick(SID, pid, NOW + timedelta(seconds=1), was_unsubscribed=False),
        checks.Tick(other, gone, NOW + timedelta(seconds=1), was_unsubscribed=False),
        checks.Tick("003000000000003AAA", None, NOW, was_unsubscribed=False),
    ]
    snap = checks.read_store(db)
    snap.remote = {SID: {"Id": SID, EMAIL: True}, other: {"Id": other, "IsDeleted": True}}
    seen: Counter[str] = Counter()
    broken = checks.check_live_opt_outs(
        snap, ticks, timeline, settle=timedelta(seconds=15), checked=seen
    )
    assert len(broken) == 1 and f"person {pid}:" in broken[0]
    assert seen["inv9_not_linked"] == 1 and seen["inv9_deleted_or_converted_since"] == 1

    # applied by the live pull: holds, and says so
    with db.transaction() as s:
        person = s.get(Person, pid)
        unsubscribe_person(s, person, source=Source.SALESFORCE, actor=checks.LIVE_ACTOR, now=NOW)
    snap = checks.read_store(db)
    snap.remote = {SID: {"Id": SID, EMAIL: True}, other: {"Id": other, "IsDeleted": True}}
    seen = Counter()
    assert (
        checks.check_live_opt_outs(snap, ticks, timeline, settle=timedelta(0), checked=seen) == []
    )
    assert seen["inv9_applied_by_live_pull"] == 1

    # a tick just before a switch of the synced field is not counted
    timeline.switches.append((NOW + timedelta(seconds=3), NOW + timedelta(seconds=4), SALES))
    seen = Counter()
    checks.check_live_opt_outs(
        snap, ticks[:1], timeline, settle=timedelta(seconds=15), checked=seen
    )
    assert seen["inv9_near_a_field_switch"] == 1 and not seen["inv9_salesforce_opt_outs_checked"]


def test_a_record_of_the_address_left_unset_breaks_invariant_1b(db):
    pid = _person(db, "Dup@example.org", SID)
    _settle(db, pid, state="sent", field=EMAIL, target_id=SID, sent_at=NOW)
    snap = checks.read_store(db)
    twin = "00Q000000000002AAA"
    snap.remote = {
        SID: {"Id": SID, "Email": "dup@example.org", EMAIL: True},
        twin: {"Id": twin, "Email": "DUP@example.org", EMAIL: False, "IsConverted": False},
    }
    seen: Counter[str] = Counter()
    broken = checks.check_address_records(snap, seen)
    assert len(broken) == 1 and twin in broken[0]
    snap.remote[twin][EMAIL] = True
    assert checks.check_address_records(snap, seen) == []
    # a converted Lead cannot be written: not required
    snap.remote[twin].update({EMAIL: False, "IsConverted": True})
    assert checks.check_address_records(snap, seen) == []


def test_every_record_of_an_unsubscribed_address_must_be_set(db):
    linked, duplicate, converted = "003000000000001AAA", "00Q000000000002AAA", "00Q000000000003AAA"
    _person(db, "dup@example.org", linked)
    snap = checks.read_store(db)
    snap.remote = {
        linked: {"Id": linked, "Email": "dup@example.org", EMAIL: True},
        # the same address on a Lead, in another case: an opt-out reaches it too
        duplicate: {"Id": duplicate, "Email": "Dup@Example.org", EMAIL: False},
        converted: {"Id": converted, "Email": "dup@example.org", "IsConverted": True},
    }
    report = {"field": EMAIL, "failures": []}
    seen: Counter[str] = Counter()
    broken = checks.check_every_record_of_the_address(snap, report, seen)
    assert len(broken) == 1 and duplicate in broken[0]
    failed = {"field": EMAIL, "failures": [{"salesforce_id": duplicate, "fix": "x"}]}
    assert checks.check_every_record_of_the_address(snap, failed, seen) == []
    snap.remote[duplicate][EMAIL] = True
    assert checks.check_every_record_of_the_address(snap, report, seen) == []
    assert seen["inv10_record_of_the_address_set"] >= 2
