"""``/api/v1/persons``: upsert one, bulk, look up with opt-out and push state."""

from __future__ import annotations

from sqlalchemy import update

from optsync.domain.ids import make_id
from optsync.store.models import OutboxPush
from tests.integration.web.conftest import assert_error, counts

SF1 = make_id("003", 1)
SF2 = make_id("00Q", 2)


def test_upsert_creates_then_updates_then_leaves_unchanged(client, member_headers):
    body = {"email": "Ann@Example.com", "salesforce_id": SF1[:15], "first_name": " Ann "}
    r = client.post("/api/v1/persons", json=body, headers=member_headers)
    assert r.status_code == 201 and r.json()["outcome"] == "created"
    person = r.json()["person"]
    assert person["email"] == "ann@example.com"
    assert person["salesforce_id"] == SF1 and person["salesforce_object"] == "Contact"
    assert person["first_name"] == "Ann" and person["push"] is None
    r = client.post(
        "/api/v1/persons",
        json={"email": "ann@example.com", "last_name": "Lee"},
        headers=member_headers,
    )
    assert r.status_code == 200 and r.json()["outcome"] == "updated"
    assert r.json()["person"]["last_name"] == "Lee" and r.json()["person"]["first_name"] == "Ann"
    r = client.post("/api/v1/persons", json={"email": "ann@example.com"}, headers=member_headers)
    assert r.status_code == 200 and r.json()["outcome"] == "unchanged"


def test_upsert_validation_and_conflict(client, member_headers):
    r = client.post("/api/v1/persons", json={"email": "nope"}, headers=member_headers)
    assert_error(r, 422, "validation_error", "email")
    r = client.post(
        "/api/v1/persons",
        json={"email": "a@example.com", "salesforce_id": "001000000000001"},
        headers=member_headers,
    )
    assert_error(r, 422, "validation_error", "salesforce_id")
    r = client.post("/api/v1/persons", json={"first_name": "x"}, headers=member_headers)
    assert_error(r, 422, "validation_error", "email")
    client.post(
        "/api/v1/persons",
        json={"email": "a@example.com", "salesforce_id": SF1},
        headers=member_headers,
    )
    r = client.post(
        "/api/v1/persons",
        json={"email": "b@example.com", "salesforce_id": SF1},
        headers=member_headers,
    )
    assert_error(r, 409, "conflict", "salesforce_id")
    r = client.post(
        "/api/v1/persons",
        json={"email": "c@example.com", "first_name": "a\x00b"},
        headers=member_headers,
    )
    assert_error(r, 422, "validation_error", "first_name")


def test_bulk_reports_per_row_errors_and_reruns_change_nothing(client, ctx, member_headers):
    rows = [
        {"email": "p0@example.com", "salesforce_id": SF1},
        {"email": "not an email"},
        {"email": "P0@example.com"},
        {"email": "p3@example.com", "salesforce_id": SF1},
        {"email": "p4@example.com", "salesforce_id": "bad"},
        *({"email": f"x{i}@example.com"} for i in range(2500)),
    ]
    r = client.post("/api/v1/persons/bulk", json={"persons": rows}, headers=member_headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rows"] == len(rows) and report["created"] == 2501 and report["linked"] == 1
    assert [(e["index"], e["field"]) for e in report["errors"]] == [
        (1, "email"),
        (2, "email"),
        (3, "salesforce_id"),
        (4, "salesforce_id"),
    ]
    again = client.post("/api/v1/persons/bulk", json={"persons": rows}, headers=member_headers)
    assert again.json()["created"] == 0 and again.json()["unchanged"] == 2501
    assert counts(ctx.db)[0] == 2501


def test_bulk_limit_is_10000(client, member_headers):
    rows = [{"email": f"x{i}@example.com"} for i in range(10_001)]
    r = client.post("/api/v1/persons/bulk", json={"persons": rows}, headers=member_headers)
    assert_error(r, 422, "validation_error", "persons")


def test_lookup_by_email_and_id_with_push_states(client, ctx, member_headers):
    client.post(
        "/api/v1/persons",
        json={"email": "ann@example.com", "salesforce_id": SF1},
        headers=member_headers,
    )
    r = client.get("/api/v1/persons", params={"email": " ANN@example.com "}, headers=member_headers)
    assert r.status_code == 200
    pid = r.json()["id"]
    assert r.json()["unsubscribed"] is False and r.json()["push"] is None
    client.post("/api/v1/unsubscribes", json={"person_id": pid}, headers=member_headers)
    push = client.get(f"/api/v1/persons/{pid}", headers=member_headers).json()["push"]
    assert push["state"] == "pending" and push["code"] is None
    with ctx.db.transaction() as s:
        s.execute(
            update(OutboxPush).values(
                state="failed",
                last_error_code="ENTITY_IS_DELETED",
                last_error_message="entity is deleted",
                fix="Re-link the person to a live record.",
            )
        )
    push = client.get(f"/api/v1/persons/{pid}", headers=member_headers).json()["push"]
    assert push == push | {
        "state": "failed",
        "code": "ENTITY_IS_DELETED",
        "fix": "Re-link the person to a live record.",
    }
    with ctx.db.transaction() as s:
        s.execute(update(OutboxPush).values(state="sent", sent_at=ctx.clock()))
    assert (
        client.get(f"/api/v1/persons/{pid}", headers=member_headers).json()["push"]["state"]
        == "pushed"
    )
    r = client.post(
        "/api/v1/unsubscribes", json={"email": "new@example.com"}, headers=member_headers
    )
    new = client.get(f"/api/v1/persons/{r.json()['person_id']}", headers=member_headers).json()
    # pending until a worker has looked the address up (then not_linked: Not in Salesforce)
    assert new["push"]["state"] == "pending"


def test_lookup_failures(client, member_headers):
    assert_error(
        client.get("/api/v1/persons", params={"email": "x@example.com"}, headers=member_headers),
        404,
        "not_found",
        "email",
    )
    assert_error(
        client.get("/api/v1/persons", params={"email": "bad"}, headers=member_headers),
        422,
        "validation_error",
        "email",
    )
    assert_error(
        client.get("/api/v1/persons", headers=member_headers), 422, "validation_error", "email"
    )
    assert_error(client.get("/api/v1/persons/999", headers=member_headers), 404, "not_found")
    assert_error(
        client.get(f"/api/v1/persons/{2**64}", headers=member_headers), 422, "validation_error"
    )
    assert_error(client.get("/api/v1/persons/abc", headers=member_headers), 422, "validation_error")


def test_a_person_lists_the_records_of_the_address(client, ctx, member_headers):
    from optsync.domain.ids import make_id
    from optsync.domain.optout import Source
    from optsync.services.optouts import unsubscribe_email
    from optsync.store.records import MirroredRecord, upsert_records

    contact, account = make_id("003", 11), make_id("001", 12)
    with ctx.db.transaction() as s:
        pid = unsubscribe_email(
            s, "rec@example.com", source=Source.API, actor="t", now=ctx.clock()
        ).person.id
        upsert_records(
            s,
            [
                MirroredRecord(contact, "Contact", "REC@example.com", email_opt_out=True),
                MirroredRecord(account, "Account", "rec@example.com", email_opt_out=None),
            ],
            ctx.clock(),
        )
    body = client.get(f"/api/v1/persons/{pid}", headers=member_headers).json()
    assert body["records"] == [
        {
            "record_id": contact,
            "object": "Contact",
            "opted_out": True,
            "converted": False,
            "deleted": False,
            "primary": False,
        },
        {
            "record_id": account,
            "object": "Account",
            "opted_out": None,
            "converted": False,
            "deleted": False,
            "primary": False,
        },
    ]
    assert body["push"]["records"] == []
