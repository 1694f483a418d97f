"""A push sets the field on every record of the address (issue 16): the mirror's records
and the ones a batched lookup finds, on SQLite and PostgreSQL against the emulator."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from optsync.domain.optout import Source
from optsync.domain.retry import RetryPolicy
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.push import Pusher
from optsync.services.push_retry import retry_pushes
from optsync.services.sync_settings import update_settings
from optsync.store.models import OutboxPush, Person, PushRecord, SalesforceRecord
from optsync.store.optouts import requeue_for_addresses
from optsync.store.records import MirroredRecord, save_mirror_state, upsert_records
from tests.integration.push.conftest import record

pytestmark = pytest.mark.emulator


class Spy:
    """The emulator gateway, remembering every record each update call carried."""

    def __init__(self, gateway):
        self.gw = gateway
        self.sent: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self.gw, name)

    def set_opt_out(self, targets, field):
        self.sent.append([t.salesforce_id for t in targets])
        return self.gw.set_opt_out(targets, field)


@pytest.fixture
def spy(sf_gateway):
    return Spy(sf_gateway)


@pytest.fixture
def pusher(db, clock, spy):
    policy = RetryPolicy(base_s=0.5, factor=2.0, cap_s=5.0, daily_limit_pause_s=600)
    return Pusher(
        db, lambda: spy, worker="w", clock=clock, policy=policy, rng=random.Random(7).random
    )


def create(sf, obj, email, **fields):
    body = {"LastName": "Lee", "Email": email, **fields}
    if obj == "Lead":
        body["Company"] = "Acme"
    return sf.restful(f"sobjects/{obj}", method="POST", json=body)["id"]


def unsubscribe(db, clock, email, *, link=None, obj=None):
    with db.transaction() as s:
        if link:
            upsert_person(s, PersonInput(1, email, link, obj), clock())
        return optouts.unsubscribe_email(
            s, email, source=Source.API, actor="t", now=clock()
        ).person.id


def outcomes(db, pid):
    with db.transaction() as s:
        push = s.scalars(
            select(OutboxPush).where(OutboxPush.person_id == pid).order_by(OutboxPush.id.desc())
        ).first()
        rows = s.scalars(select(PushRecord).where(PushRecord.push_id == push.id)).all()
        return push, {r.record_id: (r.state, r.error_code) for r in rows}


def test_one_unsubscribe_sets_every_record_of_the_address(emu, sf, db, clock, pusher, spy):
    contact = create(sf, "Contact", "Ann.Lee@Example.com")
    duplicate = create(sf, "Contact", "ann.lee@example.com")
    lead = create(sf, "Lead", "ANN.LEE@EXAMPLE.COM")
    create(sf, "Contact", "bob@example.com")
    pid = unsubscribe(db, clock, "ann.lee@example.com", link=contact, obj="Contact")
    before = dict(spy.calls_by_endpoint)
    report = pusher.drain()
    assert report.sent == 1 and report.records_sent == 3
    calls = {k: v - before.get(k, 0) for k, v in spy.calls_by_endpoint.items()}
    # one lookup; the linked record is updated while the lookup runs, the two it found
    # in a second call; whether the org has Person Accounts is asked once per gateway
    # (a describe), not per push
    assert calls == {"sobjects/Account/describe": 1, "composite": 1, "composite/sobjects": 2}
    assert spy.sent[0] == [contact] and sorted(spy.sent[1]) == sorted([duplicate, lead])
    unsubscribe(db, clock, "bob@example.com")
    pusher.drain()
    assert spy.calls_by_endpoint["sobjects/Account/describe"] == 1
    for rid in (contact, duplicate, lead):
        assert record(emu, rid)["HasOptedOutOfEmail"] is True
    push, rows = outcomes(db, pid)
    assert push.state == "sent"
    assert {r: st for r, (st, _) in rows.items()} == {
        contact: "sent",
        duplicate: "sent",
        lead: "sent",
    }
    with db.transaction() as s:
        mirror = {
            r.record_id: (r.email, r.email_opt_out) for r in s.scalars(select(SalesforceRecord))
        }
    assert mirror[lead] == ("ann.lee@example.com", True)
    assert mirror[duplicate] == ("ann.lee@example.com", True)


def test_a_converted_lead_is_skipped_and_mirrored_as_converted(emu, sf, db, clock, pusher, spy):
    lead = create(sf, "Lead", "cy@example.com")
    contact = emu.control("POST", f"records/{lead}/convert")["contact_id"]
    sf.restful(f"sobjects/Contact/{contact}", method="PATCH", json={"Email": "cy@example.com"})
    pid = unsubscribe(db, clock, "cy@example.com")
    report = pusher.drain()
    assert report.sent == 1 and report.failed == {}
    assert [sorted(batch) for batch in spy.sent] == [[contact]]
    assert record(emu, contact)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        assert s.get(SalesforceRecord, lead).converted is True
        person = s.get(Person, pid)
    # linked by the rule (contact_then_lead) to the record found
    assert (person.salesforce_id, person.salesforce_object) == (contact, "Contact")


def test_a_trusted_mirror_makes_no_lookup(emu, sf, db, clock, pusher, spy):
    contact = create(sf, "Contact", "dee@example.com")
    lead = create(sf, "Lead", "dee@example.com")
    with db.transaction() as s:
        upsert_records(
            s,
            [
                MirroredRecord(contact, "Contact", "dee@example.com", email_opt_out=False),
                MirroredRecord(lead, "Lead", "DEE@example.com", email_opt_out=False),
            ],
            clock(),
        )
        save_mirror_state(s, clock(), through=clock() - timedelta(minutes=1), trusted=True)
    unsubscribe(db, clock, "dee@example.com")
    assert pusher.drain().records_sent == 2
    assert dict(spy.calls_by_endpoint) == {"composite/sobjects": 1}
    assert record(emu, lead)["HasOptedOutOfEmail"] is True
    # a stale watermark is not trusted: the next push looks up again
    with db.transaction() as s:
        save_mirror_state(s, clock(), trusted=True)
    clock.advance(hours=1)
    create(sf, "Contact", "eve@example.com")
    unsubscribe(db, clock, "eve@example.com")
    before = dict(spy.calls_by_endpoint)
    pusher.drain()
    assert spy.calls_by_endpoint["composite"] - before.get("composite", 0) == 1


def test_partial_failure_fails_with_the_fix_and_a_retry_sends_only_the_failed_record(
    emu, sf, db, clock, pusher, spy
):
    contact = create(sf, "Contact", "fay@example.com")
    lead = create(sf, "Lead", "fay@example.com")
    emu.control("PUT", "fields/Lead/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    pid = unsubscribe(db, clock, "fay@example.com")
    report = pusher.drain()
    assert report.sent == 0 and sum(report.failed.values()) == 1
    push, rows = outcomes(db, pid)
    assert (
        push.state == "failed" and push.fix and "1 of 2 records failed" in push.last_error_message
    )
    assert rows[contact] == ("sent", None) and rows[lead][0] == "failed"
    assert record(emu, contact)["HasOptedOutOfEmail"] is True
    emu.control("PUT", "fields/Lead/HasOptedOutOfEmail", {"visible": True, "updateable": True})
    with db.transaction() as s:
        assert retry_pushes(s, now=clock(), all_failed=True).reopened == 1
    spy.sent.clear()
    assert pusher.drain().sent == 1
    assert spy.sent == [[lead]]  # the Contact, already set by this push, is not sent again
    push, rows = outcomes(db, pid)
    assert push.state == "sent" and rows == {contact: ("sent", None), lead: ("sent", None)}


def test_a_retry_after_a_field_switch_sets_the_new_field_on_every_record(
    emu, sf, db, clock, pusher, spy
):
    """What this push set before the switch carries the old field only: the retry must
    set the new field there too (found by the soak: a Contact kept Email Opt Out alone)."""
    contact = create(sf, "Contact", "gil@example.com")
    lead = create(sf, "Lead", "gil@example.com")
    emu.control("PUT", "fields/Lead/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    pid = unsubscribe(db, clock, "gil@example.com")
    pusher.drain()
    assert outcomes(db, pid)[1][contact] == ("sent", None)
    emu.control("PUT", "fields/Lead/HasOptedOutOfEmail", {"visible": True, "updateable": True})
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True, "field": "sales_opt_out"}, actor="t", now=clock())
        assert retry_pushes(s, now=clock(), all_failed=True).reopened == 1
    spy.sent.clear()
    assert pusher.drain().sent == 1
    assert sorted(r for call in spy.sent for r in call) == sorted([contact, lead])
    assert record(emu, contact)["Sales_Opt_Out__c"] is True
    assert record(emu, lead)["Sales_Opt_Out__c"] is True
    push, rows = outcomes(db, pid)
    assert push.state == "sent" and push.field == "Sales_Opt_Out__c"
    assert rows == {contact: ("sent", None), lead: ("sent", None)}


@pytest.mark.parametrize(
    ("rule", "linked"),
    [
        ("contact_then_lead", "Contact"),
        ("lead_then_contact", "Lead"),
        ("contact_only", "Contact"),
        ("lead_only", "Lead"),
        ("off", None),
    ],
)
def test_each_linking_rule_picks_the_primary(emu, sf, db, clock, pusher, rule, linked):
    ids = {"Contact": create(sf, "Contact", "gil@example.com")}
    ids["Lead"] = create(sf, "Lead", "gil@example.com")
    with db.transaction() as s:
        update_settings(s, {"link_rule": rule}, actor="t", now=clock())
    pid = unsubscribe(db, clock, "gil@example.com")
    assert pusher.drain().records_sent == 2  # every record counts, whatever the rule
    with db.transaction() as s:
        person = s.get(Person, pid)
    assert person.salesforce_object == linked
    assert person.salesforce_id == (ids[linked] if linked else None)


def test_lead_only_with_only_a_contact_sets_it_but_links_nothing(emu, sf, db, clock, pusher):
    contact = create(sf, "Contact", "hal@example.com")
    with db.transaction() as s:
        update_settings(s, {"link_rule": "lead_only"}, actor="t", now=clock())
    pid = unsubscribe(db, clock, "hal@example.com")
    assert pusher.drain().sent == 1
    assert record(emu, contact)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        assert s.get(Person, pid).salesforce_id is None


def test_not_in_salesforce_waits_and_is_requeued_when_a_record_appears(emu, sf, db, clock, pusher):
    pid = unsubscribe(db, clock, "ivy@example.com")
    report = pusher.drain()
    assert report.not_linked == 1 and report.failed == {}
    push, _ = outcomes(db, pid)
    assert push.state == "not_linked"
    lead = create(sf, "Lead", "Ivy@example.com")
    # what a pull does when it sees the record: mirror it, then re-queue its address
    with db.transaction() as s:
        upsert_records(s, [MirroredRecord(lead, "Lead", "Ivy@example.com")], clock())
        assert requeue_for_addresses(s, ["ivy@example.com"], clock()) == 1
    assert pusher.drain().sent == 1
    assert record(emu, lead)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        assert s.get(Person, pid).salesforce_id == lead


def test_requeue_for_addresses_leaves_subscribed_persons_alone(db, clock):
    with db.transaction() as s:
        upsert_person(s, PersonInput(1, "jo@example.com", None, None), clock())
        assert requeue_for_addresses(s, ["jo@example.com"], clock()) == 0
        assert s.scalars(select(OutboxPush)).all() == []


def test_a_resubscribe_during_the_lookup_sends_nothing(emu, sf, db, clock, pusher, spy):
    a = create(sf, "Contact", "kim@example.com")
    b = create(sf, "Lead", "kim@example.com")
    pid = unsubscribe(db, clock, "kim@example.com")
    real = spy.gw.find_records

    def resubscribe_during_lookup(emails, field):
        found = real(emails, field)
        with db.transaction() as s:
            optouts.resubscribe_person(
                s, s.get(Person, pid), source=Source.ADMIN, actor="a", now=clock(), reason="asked"
            )
        return found

    spy.find_records = resubscribe_during_lookup
    report = pusher.drain()
    assert report.sent == 0 and report.cancelled == 1 and spy.sent == []
    for rid in (a, b):
        assert record(emu, rid)["HasOptedOutOfEmail"] is False
    with db.transaction() as s:
        assert s.scalars(select(OutboxPush.state)).all() == ["cancelled"]


def _person_accounts(emu) -> None:
    emu.control("PUT", "org", {"person_accounts": True})


def _person_account(sf, email: str) -> tuple[str, str]:
    from optsync.emulator.schema import PERSON_RECORD_TYPE_ID

    account = sf.Account.create(
        {"RecordTypeId": PERSON_RECORD_TYPE_ID, "LastName": "Lee", "PersonEmail": email}
    )["id"]
    person_contact = sf.Account.get(account)["PersonContactId"]
    return account, person_contact


def test_a_lead_a_contact_and_a_person_account_are_all_set(emu, sf, db, clock, pusher, spy):
    _person_accounts(emu)
    contact = create(sf, "Contact", "lou@example.com")
    lead = create(sf, "Lead", "Lou@Example.com")
    account, person_contact = _person_account(sf, "LOU@example.com")
    pid = unsubscribe(db, clock, "lou@example.com")
    before = dict(spy.calls_by_endpoint)
    report = pusher.drain()
    assert report.sent == 1 and report.records_sent == 3 and report.failed == {}
    calls = {k: v - before.get(k, 0) for k, v in spy.calls_by_endpoint.items()}
    assert calls.get("composite") == 1 and calls.get("composite/sobjects") == 1, calls
    # the Account is written, never its hidden PersonContact
    assert sorted(spy.sent[0]) == sorted([contact, lead, account])
    assert person_contact not in spy.sent[0]
    assert record(emu, account)["PersonHasOptedOutOfEmail"] is True
    assert record(emu, contact)["HasOptedOutOfEmail"] is True
    assert record(emu, lead)["HasOptedOutOfEmail"] is True
    _push, rows = outcomes(db, pid)
    assert set(rows) == {contact, lead, account}
    with db.transaction() as s:
        assert s.get(SalesforceRecord, account).object == "Account"
        assert s.get(SalesforceRecord, person_contact) is None
        assert s.get(Person, pid).salesforce_id == contact  # contact_then_lead


def test_a_person_account_gets_the_custom_field_in_its_pc_form(emu, sf, db, clock, pusher):
    _person_accounts(emu)
    account, _ = _person_account(sf, "max@example.com")
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True, "field": "sales_opt_out"}, actor="t", now=clock())
    pid = unsubscribe(db, clock, "max@example.com")
    assert pusher.drain().sent == 1
    rec = record(emu, account)
    assert rec["Sales_Opt_Out__pc"] is True and rec["PersonHasOptedOutOfEmail"] is False
    with db.transaction() as s:
        person = s.get(Person, pid)
    # a Person Account ranks with the Contacts: it becomes the primary record
    assert (person.salesforce_id, person.salesforce_object) == (account, "Account")


def test_mirrored_records_that_lost_the_address_are_not_sent(emu, sf, db, clock, pusher, spy):
    live = create(sf, "Contact", "ned@example.com")
    gone = create(sf, "Lead", "ned@example.com")
    moved = create(sf, "Contact", "ned@example.com")
    with db.transaction() as s:
        upsert_records(
            s,
            [
                MirroredRecord(r, o, "ned@example.com", email_opt_out=False)
                for r, o in ((live, "Contact"), (gone, "Lead"), (moved, "Contact"))
            ],
            clock(),
        )
    emu.control("DELETE", f"records/{gone}")
    sf.restful(f"sobjects/Contact/{moved}", method="PATCH", json={"Email": "ned@other.org"})
    clock.advance(minutes=1)
    pid = unsubscribe(db, clock, "ned@example.com")
    report = pusher.drain()
    # the untrusted mirror's records wait for the lookup: only what still has the address
    assert report.sent == 1 and report.failed == {} and spy.sent == [[live]]
    assert record(emu, moved)["HasOptedOutOfEmail"] is False
    _push, rows = outcomes(db, pid)
    assert rows == {live: ("sent", None)}
    with db.transaction() as s:
        assert s.get(SalesforceRecord, gone).email is None
        assert s.get(SalesforceRecord, moved).email is None
        assert s.get(SalesforceRecord, live).email == "ned@example.com"


def test_a_link_to_a_record_of_another_address_is_kept(emu, sf, db, clock, pusher):
    chosen = create(sf, "Contact", "work@example.org")  # an admin linked the person here
    lead = create(sf, "Lead", "pat@example.com")
    pid = unsubscribe(db, clock, "pat@example.com", link=chosen, obj="Contact")
    assert pusher.drain().records_sent == 2
    assert record(emu, lead)["HasOptedOutOfEmail"] is True
    with db.transaction() as s:
        assert s.get(Person, pid).salesforce_id == chosen
