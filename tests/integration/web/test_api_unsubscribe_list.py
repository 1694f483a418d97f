"""``GET /api/v1/unsubscribes`` (issue 17): the Unsubscribes tab's filters through the same
query builder, cursor paging with ``next_cursor``, strict types, a tampered cursor named
in the 422, member tokens allowed, and ``Accept: text/csv`` exporting every matching row."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import LedgerEntry, OutboxPush
from optsync.store.runs import create_run

PATH = "/api/v1/unsubscribes"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def add(ctx, n: int, source=Source.API, obj: str | None = None, email: str | None = None) -> int:
    email = email or f"a{n:03d}@example.com"
    when = T0 + timedelta(minutes=n)
    with ctx.db.transaction() as s:
        if obj:
            upsert_person(
                s,
                PersonInput(n, email, make_id("003" if obj == "Contact" else "00Q", n), obj),
                when,
            )
        return unsubscribe_email(s, email, source=source, actor="t", now=when).person.id


def test_pages_through_every_row_with_next_cursor_under_inserts(client, member_headers, ctx):
    for n in range(1, 8):
        add(ctx, n)
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 3}
    extra = 100
    for _ in range(10):  # 7 rows in pages of 3: a cursor that does not advance fails here
        r = client.get(PATH, params=params, headers=member_headers)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [row["email"] for row in body["unsubscribes"]]
        extra += 1
        add(ctx, extra)  # a newer unsubscribe arrives between pages
        if body["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": body["next_cursor"]}
    else:
        raise AssertionError("paging never reached the last page")
    assert seen == [f"a{n:03d}@example.com" for n in range(7, 0, -1)]


def test_filters_and_row_shape(client, member_headers, ctx):
    pid = add(ctx, 1, Source.CSV, obj="Lead")
    unlinked = add(ctx, 2, Source.API)
    with ctx.db.transaction() as s:
        # looked up by the worker: no record has the address (Not in Salesforce)
        s.execute(
            update(OutboxPush).where(OutboxPush.person_id == unlinked).values(state="not_linked")
        )
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pid)
            .values(state="failed", last_error_code="ENTITY_IS_DELETED", fix="Link again.")
        )
    r = client.get(PATH, params={"source": "csv", "object": "Lead"}, headers=member_headers)
    assert r.status_code == 200
    assert r.json() == {
        "unsubscribes": [
            {
                "person_id": pid,
                "email": "a001@example.com",
                "salesforce_id": make_id("00Q", 1),
                "salesforce_object": "Lead",
                "source": "csv",
                "unsubscribed_at": "2026-11-20T12:01:00Z",
                "push_state": "failed",
                "push_code": "ENTITY_IS_DELETED",
                "push_fix": "Link again.",
            }
        ],
        "next_cursor": None,
    }

    def emails(**params: str) -> list[str]:
        got = client.get(PATH, params=params, headers=member_headers)
        assert got.status_code == 200, got.text
        return [row["email"] for row in got.json()["unsubscribes"]]

    assert emails(state="not_linked") == ["a002@example.com"]
    assert emails(code="ENTITY_IS_DELETED") == ["a001@example.com"]
    assert emails(q=make_id("00Q", 1)) == ["a001@example.com"]
    assert emails(q="a002") == ["a002@example.com"]
    assert emails(sort="email") == ["a001@example.com", "a002@example.com"]
    assert emails(since="2026-11-20T12:02:00Z") == ["a002@example.com"]
    assert emails(until="2026-11-20T12:02:00+00:00") == ["a001@example.com"]
    assert emails(since="2026-11-21") == []  # a day in the configured zone


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"source": "page "}, "source"),
        ({"source": "nowhere"}, "source"),
        ({"state": "sent"}, "state"),
        ({"object": "contact"}, "object"),
        ({"since": "2026-02-30"}, "since"),
        ({"since": "2026-11-01T00:00:00"}, "since"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ({"sort": "random"}, "sort"),
        ({"cursor": "x"}, "cursor"),
        ({"q": "a\nb"}, "q"),
        ({"pulled_by_run": "abc"}, "pulled_by_run"),
        ({"pulled_by_run": "0"}, "pulled_by_run"),
        ({"pushed_by_run": "-1"}, "pushed_by_run"),
        ({"pushed_by_run": str(2**63)}, "pushed_by_run"),
    ],
)
def test_bad_values_get_a_422_naming_them(client, member_headers, params, field):
    r = client.get(PATH, params=params, headers=member_headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_a_tampered_cursor_is_a_422_naming_cursor(client, member_headers, ctx):
    for n in range(1, 4):
        add(ctx, n)
    cursor = client.get(PATH, params={"limit": 1}, headers=member_headers).json()["next_cursor"]
    payload, mac = cursor.split(".")
    tampered = ("B" if payload[0] == "A" else "A") + payload[1:] + "." + mac
    r = client.get(PATH, params={"cursor": tampered}, headers=member_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"
    r = client.get(PATH, params={"cursor": cursor, "sort": "email"}, headers=member_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"


def test_a_sync_runs_pulled_and_pushed_persons(client, member_headers, ctx):
    with ctx.db.transaction() as s:
        run_id = create_run(
            s, trigger="manual", dry_run=False, field="HasOptedOutOfEmail", now=T0, worker="w"
        ).id
    later = T0 + timedelta(minutes=1)
    pulled = add(ctx, 1, Source.API, email="pulled@example.com")
    pushed = add(ctx, 2, Source.API, email="pushed@example.com")
    add(ctx, 3, Source.API, email="other@example.com")
    with ctx.db.transaction() as s:
        # what a run writes (optsync.store.sync_runs, services.sync.push_phase)
        s.add(
            LedgerEntry(
                person_id=pulled,
                kind="unsubscribe",
                source="salesforce",
                actor="sync",
                evidence={"sync_run": run_id, "field": "HasOptedOutOfEmail"},
                created_at=later,
            )
        )
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pushed)
            .values(state="sent", claimed_by=f"sync run #{run_id}", sent_at=later)
        )

    def emails(**params: str) -> list[str]:
        r = client.get(PATH, params=params, headers=member_headers)
        assert r.status_code == 200, r.text
        return [row["email"] for row in r.json()["unsubscribes"]]

    assert emails(pulled_by_run=str(run_id)) == ["pulled@example.com"]
    assert emails(pushed_by_run=str(run_id)) == ["pushed@example.com"]
    assert emails(pushed_by_run=str(run_id + 1)) == []
    r = client.get(
        PATH,
        params={"pushed_by_run": str(run_id)},
        headers={**member_headers, "Accept": "text/csv"},
    )
    assert [row[1] for row in csv.reader(io.StringIO(r.text))] == ["email", "pushed@example.com"]


def test_needs_a_token(client):
    assert client.get(PATH).status_code == 401


def test_accept_text_csv_exports_every_matching_row(client, member_headers, ctx):
    for n in range(1, 151):
        add(ctx, n, Source.CSV)
    add(ctx, 900, Source.API, email="+1@example.com")
    r = client.get(
        PATH,
        params={"source": "csv", "limit": 10, "sort": "oldest"},
        headers={**member_headers, "Accept": "text/csv"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert len(rows) == 151 and rows[1][1] == "a001@example.com"  # all, not the limit
    r = client.get(PATH, params={"source": "api"}, headers={**member_headers, "Accept": "text/csv"})
    assert list(csv.reader(io.StringIO(r.text)))[1][1] == "'+1@example.com"


def test_the_openapi_document_declares_the_list(client):
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/api/v1/unsubscribes"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert names == {
        "source",
        "state",
        "code",
        "object",
        "since",
        "until",
        "q",
        "pulled_by_run",
        "pushed_by_run",
        "sort",
        "cursor",
        "limit",
    }
    limit = next(p for p in op["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
