"""`persons pull` creates or links persons from the emulator's Contacts and Leads."""

from sqlalchemy import func, select

from optsync.services.persons import PersonInput, upsert_person
from optsync.services.persons_pull import pull_persons
from optsync.store.models import Person
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
        linked = s.scalar(select(func.count()).select_from(Person)
                          .where(Person.salesforce_id.is_not(None)))
        p = s.scalars(select(Person).where(Person.email == existing_email.lower())).one()
    assert p.salesforce_id == contact and p.salesforce_object == "Contact"
    assert linked == people
    again = pull_persons(db, sf_gateway, now=clock())
    assert sum(r.created + r.updated for r in again.values()) == 0


def test_a_contact_and_lead_sharing_an_address_link_the_contact(emu, db, clock, sf_gateway):
    ids = emu.seed(contacts=1, leads=1)
    contact, lead = ids["contact_ids"][0], ids["lead_ids"][0]
    email = record(emu, contact)["Email"]
    emu.control("PATCH", f"records/{lead}", {"Email": email})
    pull_persons(db, sf_gateway, now=clock())
    with db.transaction() as s:
        p = s.scalars(select(Person).where(Person.email == email.lower())).one()
    assert p.salesforce_id == contact
