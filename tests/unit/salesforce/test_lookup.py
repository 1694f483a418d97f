"""The lookup's batches: every query URL under 16,384 bytes, IN lists of a few hundred."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optsync.salesforce.lookup import (
    MAX_IN,
    MAX_URL_BYTES,
    lookup_queries,
    lookup_request,
    plan_batches,
    query_url,
    record_read,
    statement,
)

QUERIES = lookup_queries("Sales_Opt_Out__c", person_accounts=True)


def _urls(batch):
    return [query_url("59.0", statement(q, batch)) for q in QUERIES]


def test_queries_per_object_and_field_forms():
    texts = {q.object: q.head for q in QUERIES}
    # a Person Account's hidden PersonContact is not a Contact: optsync writes the Account
    assert texts["Contact"] == (
        "SELECT Id, Email, Sales_Opt_Out__c, SystemModstamp FROM Contact "
        "WHERE IsPersonAccount = false AND Email IN "
    )
    assert "IsConverted" in texts["Lead"] and "IsConverted = false" not in texts["Lead"]
    # PersonContactId: the Contact row an earlier reader may have mirrored (the nightly
    # drops it)
    assert texts["Account"] == (
        "SELECT Id, PersonEmail, Sales_Opt_Out__pc, PersonContactId, SystemModstamp FROM "
        "Account WHERE IsPersonAccount = true AND PersonEmail IN "
    )
    plain = lookup_queries("HasOptedOutOfEmail", person_accounts=False)
    assert [q.object for q in plain] == ["Contact", "Lead"]
    assert plain[0].head == (
        "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact WHERE Email IN "
    )


@pytest.mark.parametrize(
    ("obj", "person_accounts", "fields", "where"),
    [
        ("Contact", False, ("Id", "Email", "HasOptedOutOfEmail", "SystemModstamp"), ""),
        (
            "Contact",
            True,
            ("Id", "Email", "HasOptedOutOfEmail", "SystemModstamp"),
            "IsPersonAccount = false",
        ),
        (
            "Lead",
            True,
            ("Id", "Email", "HasOptedOutOfEmail", "IsConverted", "SystemModstamp"),
            "",
        ),
        (
            "Account",
            True,
            ("Id", "PersonEmail", "PersonHasOptedOutOfEmail", "PersonContactId", "SystemModstamp"),
            "IsPersonAccount = true",
        ),
    ],
)
def test_record_read_names_each_object(obj, person_accounts, fields, where):
    read = record_read(obj, "HasOptedOutOfEmail", person_accounts=person_accounts)
    assert (read.fields, read.where) == (fields, where)


def test_a_person_account_row_reads_under_contact_names():
    read = record_read("Account", "Sales_Opt_Out__c", person_accounts=True)
    row = {"Id": "001", "PersonEmail": "a@example.com", "Sales_Opt_Out__pc": True}
    assert read.canonical(row) == {"Email": "a@example.com", "Sales_Opt_Out__c": True}
    assert read.canonical({"Sales_Opt_Out__pc": False}) == {"Sales_Opt_Out__c": False}


def test_short_addresses_fill_the_in_list_and_long_ones_the_url():
    short = [f"p{n}@example.com" for n in range(1000)]
    batches = plan_batches(short, QUERIES, "59.0")
    assert [len(b) for b in batches] == [MAX_IN, MAX_IN, MAX_IN, 100]
    long = [f"{'x' * 60}.{n}@{'sub.' * 20}example.com" for n in range(400)]
    batches = plan_batches(long, QUERIES, "59.0")
    assert sum(map(len, batches)) == 400 and all(len(b) < MAX_IN for b in batches)
    for batch in batches:
        urls = _urls(batch)
        assert max(len(u.encode()) for u in urls) < MAX_URL_BYTES
    # exact: one more address would have crossed the limit
    first, second = batches[0], batches[1]
    assert max(len(u.encode()) for u in _urls([*first, second[0]])) >= MAX_URL_BYTES


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[a-z0-9.'%+&_-]{1,64}@[a-z0-9-]{1,40}\.[a-z]{2,6}", fullmatch=True),
        max_size=700,
    )
)
def test_every_batch_is_within_the_limits(emails):
    batches = plan_batches(emails, QUERIES, "59.0")
    assert [e for b in batches for e in b] == list(dict.fromkeys(emails))
    for batch in batches:
        assert 1 <= len(batch) <= MAX_IN
        for url in _urls(batch):
            assert len(url.encode()) < MAX_URL_BYTES


def test_request_body_is_one_query_subrequest_per_object():
    body = lookup_request(QUERIES, ["o'neil@example.com"], "59.0")
    assert body["allOrNone"] is False
    assert [r["referenceId"] for r in body["compositeRequest"]] == ["Contact", "Lead", "Account"]
    assert all(r["method"] == "GET" for r in body["compositeRequest"])
    assert "o%5C%27neil%40example.com" in body["compositeRequest"][0]["url"]
