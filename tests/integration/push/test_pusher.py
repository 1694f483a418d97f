"""The real-time push against the emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from optsync.services.sync_settings import update_settings
from optsync.store.models import OutboxPush, Person
from tests.integration.push.conftest import link_and_unsubscribe, record


def states(db) -> dict[str, int]:
    with db.transaction() as s:
        rows = s.scalars(select(OutboxPush.state)).all()
    return {state: rows.count(state) for state in set(rows)}


def test_sync_off_writes_email_opt_out_in_one_call_per_200(emu, db, clock, pusher, gateway):
    ids = emu.seed(contacts=150, leads=100)
    all_ids = ids["contact_ids"] + ids["lead_ids"]
    link_and_unsubscribe(db, clock, all_ids)
    report = pusher.drain()
    assert report.sent == 250 and report.failed == {}
    assert states(db) == {"sent": 250}
    assert gateway.calls_by_endpoint.get("composite/sobjects") == 2
    for sf_id in (all_ids[0], all_ids[-1]):
        rec = record(emu, sf_id)
        assert rec["HasOptedOutOfEmail"] is True
        assert rec["Sales_Opt_Out__c"] is False
    with db.transaction() as s:
        assert set(s.scalars(select(OutboxPush.field))) == {"HasOptedOutOfEmail"}


def test_sync_on_with_sales_opt_out_writes_the_selected_field(emu, db, clock, pusher):
    ids = emu.seed(contacts=3, leads=2)["contact_ids"]
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True, "field": "sales_opt_out"}, actor="t", now=clock())
    link_and_unsubscribe(db, clock, ids)
    assert pusher.drain().sent == 3
    rec = record(emu, ids[0])
    assert rec["Sales_Opt_Out__c"] is True and rec["HasOptedOutOfEmail"] is False


def test_sales_opt_out_field_selected_but_sync_off_still_writes_email_opt_out(
    emu, db, clock, pusher
):
    ids = emu.seed(contacts=1)["contact_ids"]
    with db.transaction() as s:
        update_settings(
            s, {"sync_enabled": False, "field": "sales_opt_out"}, actor="t", now=clock()
        )
    link_and_unsubscribe(db, clock, ids)
    pusher.drain()
    assert record(emu, ids[0])["HasOptedOutOfEmail"] is True


def test_converted_lead_is_followed_and_the_person_relinked(emu, db, clock, pusher):
    lead = emu.seed(leads=1)["lead_ids"][0]
    contact = emu.control("POST", f"records/{lead}/convert")["contact_id"]
    [pid] = link_and_unsubscribe(db, clock, [lead])
    report = pusher.drain()
    assert report.sent == 1 and report.followed == 1
    assert record(emu, contact)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        person = s.get(Person, pid)
        push = s.scalars(select(OutboxPush)).one()
    assert (person.salesforce_id, person.salesforce_object) == (contact, "Contact")
    assert push.target_id == contact


def test_deleted_record_fails_permanently_with_the_fix(emu, db, clock, pusher):
    ids = emu.seed(contacts=2)["contact_ids"]
    emu.control("DELETE", f"records/{ids[0]}")
    link_and_unsubscribe(db, clock, ids)
    report = pusher.drain()
    assert report.sent == 1 and report.failed == {"ENTITY_IS_DELETED": 1}
    with db.transaction() as s:
        failed = s.scalars(select(OutboxPush).where(OutboxPush.state == "failed")).one()
    assert failed.last_error_code == "ENTITY_IS_DELETED"
    assert "Recycle Bin" in failed.fix
    # a permanent failure is not retried
    clock.advance(hours=1)
    assert pusher.drain().claimed == 0


def test_expired_session_is_renewed_without_losing_the_batch(emu, db, clock, pusher, gateway):
    ids = emu.seed(contacts=5)["contact_ids"]
    link_and_unsubscribe(db, clock, ids[:2])
    assert pusher.drain().sent == 2
    emu.control("POST", "sessions/expire")
    link_and_unsubscribe(db, clock, ids[2:])
    report = pusher.drain()
    assert report.sent == 3 and report.retried == 0
    assert gateway.session_renewals >= 1


def test_injected_faults_end_with_every_push_applied(emu, db, clock, pusher):
    ids = emu.seed(contacts=300, leads=300)
    all_ids = ids["contact_ids"] + ids["lead_ids"]
    link_and_unsubscribe(db, clock, all_ids)
    emu.settings(fault_rate=0.3)
    sent = 0
    for _ in range(200):
        report = pusher.drain()
        sent += report.sent
        if states(db) == {"sent": 600}:
            break
        clock.advance(seconds=6)  # past the largest backoff of this policy
    emu.settings(fault_rate=0.0)
    assert states(db) == {"sent": 600}
    assert sent == 600
    opted = emu.control("GET", f"records/{all_ids[123]}")["HasOptedOutOfEmail"]
    assert opted is True


def test_daily_limit_pauses_then_resumes(emu, db, clock, pusher, gateway):
    ids = emu.seed(contacts=4)["contact_ids"]
    gateway.connect()
    used = emu.control("GET", "counters")["total"]
    emu.settings(daily_api_limit=used)  # the next call is over the limit
    link_and_unsubscribe(db, clock, ids)
    report = pusher.drain()
    assert report.sent == 0 and report.paused_until is not None
    assert report.paused_until >= clock() + timedelta(minutes=5)
    assert states(db) == {"pending": 4}
    emu.settings(daily_api_limit=1_000_000)
    assert pusher.drain().claimed == 0  # still paused: nothing is due yet
    clock.now = report.paused_until
    assert pusher.drain().sent == 4
