"""`persons pull` creates or links persons from the emulator's Contacts and Leads."""

from collections import Counter

from sqlalchemy import delete, func, select

from optsync.salesforce.bulk import BulkApi
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.persons_pull import pull_persons
from optsync.store.models import Person
from optsync.store.records import records_by_email
from tests.integration.push.conftest import record


def test_pull_creates_links_and_is_idempotent(emu, db, clock, sf_gateway):
    ids = emu.seed(contacts=30, leads=20)
    lead = ids["lead_ids"][0]
    emu.control("POST", f"records/{lead}/convert")  # converted Leads are not pulled
    contact = ids["contact_ids"][0]
    existing_email = record(emu, contact)["Email"]
    with db.transaction() as s:  # a person known before the pull, not linked yet
        upsert_person(s, PersonInput(1, existing_email), clock())
    reports = pull_persons(db, sf_gateway, now=clock())
    assert reports["Contact"].rows == 31  # 30 seeded + 1 created by the conversion
    assert reports["Lead"].rows == 19
    with db.transaction() as s:
        people = s.scalar(select(func.count()).select_from(Person))
        linked = s.scalar(
            select(func.count()).select_from(Person).where(Person.salesforce_id.is_not(None))
        )
        p = s.scalars(select(Person).where(Person.email == existing_email.lower())).one()
    assert p.salesforce_id == contact and p.salesforce_object == "Contact"
    assert linked == people
    again = pull_persons(db, sf_gateway, now=clock())
    assert sum(r.created + r.updated for r in again.values()) == 0


def test_a_contact_and_lead_sharing_an_address_link_the_contact(emu, db, clock, sf_gateway):
    ids = emu.seed(contacts=1, leads=1)
    contact, lead = ids["contact_ids"][0], ids["lead_ids"][0]
    email = record(emu, contact)["Email"]
    emu.control("PATCH", f"records/{lead}", {"Email": email, "FirstName": "Lead-only"})
    pull_persons(db, sf_gateway, now=clock())
    with db.transaction() as s:
        p = s.scalars(select(Person).where(Person.email == email.lower())).one()
    assert p.salesforce_id == contact
    assert p.first_name == record(emu, contact)["FirstName"]  # the Lead does not rename it
    again = pull_persons(db, sf_gateway, now=clock())
    assert sum(r.created + r.updated for r in again.values()) == 0
    # both records are in the mirror under the address: the Lead counts for the opt-out
    with db.transaction() as s:
        mirrored = records_by_email(s, [email.lower()], "email_opt_out")
    assert sorted(r.record_id for r in mirrored[email.lower()]) == sorted([contact, lead])


# -- REST or Bulk ------------------------------------------------------------------------

NEVER, ALWAYS = 10**9, 0  # bulk_threshold values that force REST / Bulk


def _fast_bulk(gateway):
    return BulkApi(gateway, poll_initial=0.02, poll_max=0.2)


def _messy_org(emu):
    """Records that exercise CSV quoting, nulls, bad addresses, duplicates, conversion."""
    ids = emu.seed(contacts=12, leads=8)
    c, ld = ids["contact_ids"], ids["lead_ids"]

    def patch(sf_id, **values):
        emu.control("PATCH", f"records/{sf_id}", values)

    patch(c[0], FirstName=None)
    patch(c[1], LastName='O"Brien, Jr.')
    patch(c[2], FirstName="Ann\nMarie")  # a newline inside a quoted CSV value
    patch(c[3], Email="x,y@example.com")  # Salesforce takes it; optsync rejects it
    patch(c[4], Email=None)  # no address: not pulled
    patch(c[6], Email=record(emu, c[5])["Email"], FirstName="Later")  # lowest Id wins
    patch(ld[0], Email=record(emu, c[7])["Email"])  # a Contact and a Lead share it
    patch(ld[1], Email="bad@example..com")
    emu.control("POST", f"records/{ld[2]}/convert")  # creates a Contact; the Lead is skipped
    return c, ld


def _known_person(db, clock, email):
    with db.transaction() as s:  # a person known before the pull, not linked yet
        upsert_person(s, PersonInput(1, email.lower(), first_name="Known"), clock())


def _persons(db):
    columns = (
        Person.email,
        Person.salesforce_id,
        Person.salesforce_object,
        Person.first_name,
        Person.last_name,
    )
    with db.transaction() as s:
        return sorted(tuple(row) for row in s.execute(select(*columns)))


def _summary(reports):
    return {
        obj: (
            r.rows,
            r.created,
            r.updated,
            r.unchanged,
            r.linked,
            sorted(e.reason for e in r.rejected),
        )
        for obj, r in reports.items()
    }


def test_bulk_and_rest_pull_the_same_persons_and_links(emu, db, clock, sf_gateway):
    c, ld = _messy_org(emu)
    known = record(emu, c[8])["Email"]
    outcomes = {}
    for via, threshold in (("rest", NEVER), ("bulk", ALWAYS)):
        with db.transaction() as s:
            s.execute(delete(Person))
        _known_person(db, clock, known)
        before = Counter(sf_gateway.calls_by_endpoint)
        reports = pull_persons(
            db, sf_gateway, now=clock(), bulk_threshold=threshold, bulk=_fast_bulk(sf_gateway)
        )
        calls = sf_gateway.calls_by_endpoint - before
        assert [r.via for r in reports.values()] == [via, via]
        # one COUNT() per object; REST adds one page each, Bulk one job each
        assert calls["query"] == (4 if via == "rest" else 2)
        assert calls["jobs/query"] == (0 if via == "rest" else 2)
        assert calls["jobs/query/{id}/results"] == (0 if via == "rest" else 2)
        outcomes[via] = (_persons(db), _summary(reports))
    assert emu.control("GET", "counters")["by_endpoint"]["jobs/query"] == 2  # the org saw them
    assert outcomes["bulk"] == outcomes["rest"]

    people, summary = outcomes["bulk"]
    by_id = {p[1]: p for p in people}
    assert by_id[c[0]][3] is None
    assert by_id[c[1]][4] == 'O"Brien, Jr.'
    assert by_id[c[2]][3] == "Ann Marie"  # the newline survived the CSV (then was folded)
    assert by_id[c[8]][0] == known.lower()  # the known person, now linked and named
    assert by_id[c[8]][3] == record(emu, c[8])["FirstName"]
    assert c[3] not in by_id and c[4] not in by_id and c[6] not in by_id
    assert by_id[c[5]][0] == record(emu, c[5])["Email"].lower()
    assert ld[0] not in by_id and ld[2] not in by_id  # shared with a Contact; converted
    # rows: 12 seeded - 1 without email + 1 from the conversion; c[3] rejected, c[6]
    # loses to c[5] (unchanged), the known person is linked (updated), 9 created
    *counts, rejected = summary["Contact"]
    assert counts == [12, 9, 1, 1, 10]  # rows, created, updated, unchanged, linked
    assert len(rejected) == 1 and rejected[0].startswith(f"Contact {c[3]}: email: ")
    # rows: 8 seeded - 1 converted; ld[1] rejected, ld[0] keeps the Contact's person
    *counts, rejected = summary["Lead"]
    assert counts == [7, 5, 0, 1, 5]
    assert len(rejected) == 1 and rejected[0].startswith(f"Lead {ld[1]}: email: ")
    assert len(people) == 9 + 5 + 1

    again = pull_persons(
        db, sf_gateway, now=clock(), bulk_threshold=ALWAYS, bulk=_fast_bulk(sf_gateway)
    )
    assert sum(r.created + r.updated + r.linked for r in again.values()) == 0
    assert _persons(db) == people


class _Backwards(BulkApi):
    """Bulk results in the opposite order: a real org's Bulk results have no order."""

    def query_records(self, query):
        return iter(list(super().query_records(query))[::-1])


def test_which_record_links_a_shared_address_does_not_depend_on_order(emu, db, clock, sf_gateway):
    c = emu.seed(contacts=3)["contact_ids"]
    shared = record(emu, c[0])["Email"]
    emu.control("PATCH", f"records/{c[2]}", {"Email": shared, "FirstName": "Later"})
    reports = pull_persons(
        db,
        sf_gateway,
        now=clock(),
        objects=["Contact"],
        bulk_threshold=ALWAYS,
        bulk=_Backwards(sf_gateway, poll_initial=0.02, poll_max=0.2),
    )
    assert reports["Contact"].via == "bulk" and reports["Contact"].unchanged == 1
    with db.transaction() as s:
        p = s.scalars(select(Person).where(Person.email == shared.lower())).one()
    assert p.salesforce_id == c[0]  # the lowest Id, as the REST path links it
    assert p.first_name == record(emu, c[0])["FirstName"]


def test_each_object_takes_its_own_path_from_one_count(emu, db, clock, sf_gateway):
    emu.seed(contacts=5, leads=3)
    before = Counter(sf_gateway.calls_by_endpoint)
    reports = pull_persons(
        db, sf_gateway, now=clock(), bulk_threshold=5, bulk=_fast_bulk(sf_gateway)
    )
    calls = sf_gateway.calls_by_endpoint - before
    assert {o: r.via for o, r in reports.items()} == {"Contact": "bulk", "Lead": "rest"}
    assert {o: r.created for o, r in reports.items()} == {"Contact": 5, "Lead": 3}
    assert calls["query"] == 3  # two COUNT()s and the Leads' one REST page
    assert calls["jobs/query"] == 1
