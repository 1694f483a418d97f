"""The records of an address: the primary record by linking rule, and what an opt-out
still has to set (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optsync.domain.records import (
    LINK_RULES,
    RecordView,
    parse_link_rule,
    primary_record,
    records_to_set,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONTACT = RecordView("003000000000001AAA", "Contact", "a@example.com", system_modstamp=T0)
LEAD = RecordView("00Q000000000001AAA", "Lead", "a@example.com", system_modstamp=T0)
PERSON_ACCOUNT = RecordView("001000000000001AAA", "Account", "a@example.com", system_modstamp=T0)
ALL = [LEAD, PERSON_ACCOUNT, CONTACT]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("contact_then_lead", CONTACT),
        ("lead_then_contact", LEAD),
        ("contact_only", CONTACT),
        ("lead_only", LEAD),
        ("off", None),
    ],
)
def test_each_rule_picks_its_object(rule, expected):
    assert primary_record(ALL, parse_link_rule(rule)) == expected


def test_rules_fall_back_to_the_next_object_and_only_rules_stop():
    assert primary_record([LEAD], "contact_then_lead") == LEAD
    assert primary_record([CONTACT], "lead_then_contact") == CONTACT
    assert primary_record([LEAD], "contact_only") is None
    assert primary_record([CONTACT, PERSON_ACCOUNT], "lead_only") is None
    # a Person Account is a person's contact: it ranks after Contacts, before Leads
    assert primary_record([LEAD, PERSON_ACCOUNT], "contact_then_lead") == PERSON_ACCOUNT
    assert primary_record([PERSON_ACCOUNT], "contact_only") == PERSON_ACCOUNT


def test_records_salesforce_refuses_to_update_are_never_primary():
    converted = RecordView("00Q000000000002AAA", "Lead", "a@example.com", converted=True)
    deleted = RecordView("003000000000002AAA", "Contact", "a@example.com", deleted=True)
    assert primary_record([converted, deleted], "contact_then_lead") is None
    assert primary_record([converted, deleted, LEAD], "contact_then_lead") == LEAD


def test_among_duplicates_the_current_link_stays_else_the_newest_then_lowest_id():
    older = RecordView("003000000000009AAA", "Contact", "a@example.com", system_modstamp=T0)
    newer = RecordView(
        "003000000000005AAA", "Contact", "a@example.com", system_modstamp=T0 + timedelta(1)
    )
    twin = RecordView("003000000000003AAA", "Contact", "a@example.com", system_modstamp=T0)
    assert primary_record([older, newer], "contact_then_lead") == newer
    assert primary_record([older, newer], "contact_then_lead", current=older.record_id) == older
    assert primary_record([older, twin], "contact_then_lead") == twin
    # a current link of a worse object does not hold back a better one
    assert primary_record([LEAD, CONTACT], "contact_then_lead", current=LEAD.record_id) == CONTACT


def test_records_to_set_skips_what_is_set_or_cannot_be_set():
    done = RecordView("003000000000004AAA", "Contact", "a@example.com", opted_out=True)
    unknown = RecordView("003000000000006AAA", "Contact", "a@example.com", opted_out=None)
    clear = RecordView("00Q000000000006AAA", "Lead", "a@example.com", opted_out=False)
    converted = RecordView("00Q000000000007AAA", "Lead", "a@example.com", converted=True)
    assert records_to_set([done, unknown, clear, converted]) == [unknown, clear]


def test_link_rule_parsing_is_strict():
    assert [parse_link_rule(r) for r in LINK_RULES] == list(LINK_RULES)
    for bad in ("Contact_then_lead", "contact_then_lead\n", "", "contact"):
        with pytest.raises(ValueError, match="link_rule must be one of"):
            parse_link_rule(bad)
