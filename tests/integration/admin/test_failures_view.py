"""The Failures view (issue 17, "Failures you can act on"): failed pushes grouped by error
code with counts, the fix and Retry per group and per person (the existing retry actions,
coming back here), *Not in Salesforce* unsubscribes with the action that links them, and a sync
run's counts linking to the records behind them."""

from __future__ import annotations

import html
import re

from sqlalchemy import select, update

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import OutboxPush, Person
from optsync.store.runs import create_run, finish_run
from optsync.web.admin.runs import run_links
from tests.integration.admin.conftest import csrf_of, visible

TAB = "/settings/admin/unsubscribes"
VIEW = f"{TAB}/failures"


def failed(ctx, n: int, code: str, fix: str = "Make the field updateable.") -> int:
    email = f"f{n:02d}@example.com"
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(n, email, make_id("003", n), "Contact"), ctx.clock())
        pid = unsubscribe_email(s, email, source=Source.API, actor="t", now=ctx.clock()).person.id
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pid)
            .values(state="failed", last_error_code=code, fix=fix)
        )
    return pid


def unlinked(ctx, n: int) -> int:
    with ctx.db.transaction() as s:
        pid = unsubscribe_email(
            s, f"u{n:02d}@example.com", source=Source.PAGE, actor="t", now=ctx.clock()
        ).person.id
        # what the worker settles when no record has the address: Not in Salesforce
        s.execute(update(OutboxPush).where(OutboxPush.person_id == pid).values(state="not_linked"))
        return pid


def state_of(ctx, pid: int) -> str:
    with ctx.db.transaction() as s:
        return s.scalars(
            select(OutboxPush.state)
            .where(OutboxPush.person_id == pid)
            .order_by(OutboxPush.id.desc())
        ).first()


def test_groups_by_code_with_counts_fix_and_persons(admin_client, member_client, ctx):
    a = [failed(ctx, n, "INVALID_FIELD_FOR_INSERT_UPDATE") for n in range(1, 13)]
    b = failed(ctx, 20, "ENTITY_IS_DELETED", fix="Link the person to the `MasterRecordId`.")
    page = admin_client.get(VIEW)
    assert page.status_code == 200
    text = visible(page.text)
    assert "Failed pushes: 13" in text
    # most frequent code first, with its count linking to the filtered list
    assert text.index("INVALID_FIELD_FOR_INSERT_UPDATE") < text.index("ENTITY_IS_DELETED")
    assert (
        f"{TAB}?tab=unsubscribes&amp;state=failed&amp;code=INVALID_FIELD_FOR_INSERT_UPDATE"
        in page.text
    )
    assert "12 persons" in text and "1 person" in text
    assert "Make the field updateable." in text
    assert "<code>MasterRecordId</code>" in page.text  # the fix's backticks as code
    assert "<code>MasterRecordId</code>" in admin_client.get(TAB).text  # on the tab too
    # the newest 10 of a group are listed, with a link to all of them
    listed = re.findall(r'persons/(\d+)/retry"', page.text)
    assert len(listed) == 11 and str(b) in listed
    assert "All 12 persons with INVALID_FIELD_FOR_INSERT_UPDATE" in text
    # members see the failures but no Retry button
    member = member_client.get(VIEW)
    assert member.status_code == 200 and "ENTITY_IS_DELETED" in member.text
    assert "/retry" not in member.text
    assert a


def test_retry_per_group_and_per_person_come_back_here(admin_client, member_client, ctx):
    a1, a2 = failed(ctx, 1, "CODE_A"), failed(ctx, 2, "CODE_A")
    b = failed(ctx, 3, "CODE_B")
    token = csrf_of(admin_client, VIEW)
    r = admin_client.post(
        f"{TAB}/persons/{b}/retry", data={"csrf_token": token, "return_to": "failures"}
    )
    assert r.status_code == 303 and r.headers["location"] == VIEW
    assert state_of(ctx, b) == "pending" and state_of(ctx, a1) == "failed"
    r = admin_client.post(
        f"{TAB}/pushes/retry",
        data={"csrf_token": token, "code": "CODE_A", "return_to": "failures"},
    )
    assert r.status_code == 303 and r.headers["location"] == VIEW
    assert state_of(ctx, a1) == state_of(ctx, a2) == "pending"
    assert "2 failed pushes with CODE_A queued again" in admin_client.get(VIEW).text
    # return_to is a choice, never a URL: anything else goes to the usual page
    failed(ctx, 4, "CODE_C")
    r = admin_client.post(
        f"{TAB}/pushes/retry",
        data={"csrf_token": token, "code": "CODE_C", "return_to": "https://evil.example"},
    )
    assert r.headers["location"] == TAB
    # members cannot retry
    r = member_client.post(
        f"{TAB}/pushes/retry", data={"csrf_token": csrf_of(member_client, VIEW), "code": "CODE_C"}
    )
    assert r.status_code == 403


def test_not_linked_rows_lead_to_linking_which_sends_the_push(admin_client, member_client, ctx):
    pid = unlinked(ctx, 1)
    other = failed(ctx, 9, "CODE_A")
    page = admin_client.get(VIEW)
    assert "Not in Salesforce: 1" in visible(page.text)
    assert f'href="{TAB}/persons/{pid}/link"' in page.text
    # the tab's Not in Salesforce state links there too (for admins)
    assert f'href="{TAB}/persons/{pid}/link"' in admin_client.get(f"{TAB}?state=not_linked").text
    assert "/link" not in member_client.get(f"{TAB}?state=not_linked").text
    assert member_client.get(f"{TAB}/persons/{pid}/link").status_code == 403
    form = admin_client.get(f"{TAB}/persons/{pid}/link")
    assert form.status_code == 200 and 'for="salesforce_id"' in form.text
    token = csrf_of(admin_client, f"{TAB}/persons/{pid}/link")
    # a bad id, and an id linked to someone else, are named and change nothing
    for value, words in (
        ("", "paste the 15- or 18-character id"),
        ("001000000000001", "neither a Contact (003) nor a Lead (00Q)"),
        (make_id("003", 9), "already linked to f09@example.com"),
    ):
        r = admin_client.post(
            f"{TAB}/persons/{pid}/link", data={"csrf_token": token, "salesforce_id": value}
        )
        assert r.status_code == 422 and words.lower() in html.unescape(r.text).lower(), value
        assert 'aria-invalid="true"' in r.text and state_of(ctx, pid) == "not_linked"
    lead = make_id("00Q", 77)
    r = admin_client.post(
        f"{TAB}/persons/{pid}/link", data={"csrf_token": token, "salesforce_id": lead[:15]}
    )
    assert r.status_code == 303 and r.headers["location"] == f"{TAB}/persons/{pid}"
    with ctx.db.transaction() as s:
        person = s.get(Person, pid)
        assert (person.salesforce_id, person.salesforce_object) == (lead, "Lead")
    assert state_of(ctx, pid) == "pending"  # the waiting push is due now
    assert "Not in Salesforce: 1" not in visible(admin_client.get(VIEW).text)
    assert other


def test_a_finished_runs_counts_link_to_the_records_behind_them(admin_client, ctx, clock):
    failed(ctx, 1, "CODE_A")
    with ctx.db.transaction() as s:
        run = create_run(
            s, trigger="manual", dry_run=False, field="HasOptedOutOfEmail", now=clock(), worker="w"
        )
        run_id = run.id
        # what the run wrote: a pull's ledger entry naming it, a sent push it recorded
        pulled = unsubscribe_email(
            s,
            "pulled@example.com",
            source=Source.SALESFORCE,
            actor="sync",
            now=clock(),
            evidence={"sync_run": run_id, "field": "HasOptedOutOfEmail"},
        ).person.id
        pushed = unsubscribe_email(
            s, "pushed@example.com", source=Source.API, actor="t", now=clock()
        ).person.id
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pushed)
            .values(
                state="sent", claimed_by=f"sync run #{run_id}", sent_at=clock(), settled_at=clock()
            )
        )
        # a Salesforce unsubscribe of the same minute that is not the run's
        unsubscribe_email(
            s,
            "live@example.com",
            source=Source.SALESFORCE,
            actor="salesforce live pull",
            now=clock(),
        )
    clock.advance(seconds=5)
    report = {
        "pulled": 1,
        "pushed": 1,
        "failed": {"CODE_A": 1},
        "not_linked": 4,
        "remote_opted_out": 10,
        "local_unsubscribed": 7,
        "failures": [],
        "reopted_out": [],
        "api_calls": 5,
        "phases": {},
    }
    with ctx.db.transaction() as s:
        finish_run(s, run_id, "w", status="succeeded", error=None, report=report, now=clock())
    page = admin_client.get(f"{TAB}/runs/{run_id}").text
    links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]
    to_pulled = next(h for h in links if "pulled_by_run=" in h)
    to_pushed = next(h for h in links if "pushed_by_run=" in h)
    assert to_pulled == f"{TAB}?tab=unsubscribes&pulled_by_run={run_id}"
    assert to_pushed == f"{TAB}?tab=unsubscribes&pushed_by_run={run_id}"
    assert f"{VIEW}#code-CODE_A" in links and f"{VIEW}#unlinked-h" in links
    # each link's list has exactly the run's persons, with the filter shown as active
    for link, pid, words in (
        (to_pulled, pulled, f"Pulled by sync run #{run_id}"),
        (to_pushed, pushed, f"Pushed by sync run #{run_id}"),
    ):
        listing = admin_client.get(link)
        assert listing.status_code == 200
        assert re.findall(r'href="/settings/admin/unsubscribes/persons/(\d+)"', listing.text) == [
            str(pid)
        ]
        assert words in visible(listing.text)
    history = admin_client.get(f"{TAB}?tab=integrations").text
    assert f"pulled_by_run={run_id}" in history and f"pushed_by_run={run_id}" in history
    assert f'href="{VIEW}"' in history


def test_running_and_dry_runs_link_nothing():
    base = {
        "id": 7,
        "pulled": 3,
        "pushed": 2,
        "failed": {"X": 1},
        "not_linked": 2,
        "started_at": "2026-11-24T12:00:00+00:00",
        "finished_at": "2026-11-24T12:00:05+00:00",
    }
    assert run_links({**base, "status": "running"}) == {
        "pulled": None,
        "pushed": None,
        "not_linked": None,
        "failed": {},
    }
    dry = run_links({**base, "status": "succeeded", "dry_run": True})
    assert dry["pulled"] is None and dry["pushed"] is None
    done = run_links({**base, "status": "succeeded", "dry_run": False})
    assert done["pulled"].endswith("pulled_by_run=7")
    assert done["pushed"].endswith("pushed_by_run=7")
    # a run that failed half-way links what it did; zero links nothing
    failed_run = run_links({**base, "status": "failed", "pushed": 0})
    assert failed_run["pulled"].endswith("pulled_by_run=7") and failed_run["pushed"] is None


def test_no_page_calls_an_address_without_a_record_not_linked(admin_client, ctx, clock):
    """Issue 16 renamed the state: an address no Salesforce record carries is *Not in
    Salesforce* (not a failure), on every page that names it."""
    persons = [unlinked(ctx, n) for n in range(1, 12)]  # more than the view lists
    failed(ctx, 50, "CODE_A")
    with ctx.db.transaction() as s:
        run = create_run(
            s, trigger="manual", dry_run=False, field="HasOptedOutOfEmail", now=clock(), worker="w"
        )
        report = {
            "not_linked": 12,
            "not_in_salesforce": 11,
            "mirror": {"read": "full", "records_read": 40},
        }
        finish_run(s, run.id, "w", status="succeeded", error=None, report=report, now=clock())
    view = visible(admin_client.get(VIEW).text)
    assert "All 11 not in Salesforce" in view
    run_page = admin_client.get(f"{TAB}/runs/{run.id}").text
    assert "No primary record" in visible(run_page)
    assert re.search(r"Not in Salesforce\s*11 unsubscribed addresses", visible(run_page))
    # the count of addresses without a record links to them (Failures view)
    assert f'href="{VIEW}#unlinked-h"' in run_page
    pages = [
        view,
        visible(run_page),
        visible(admin_client.get(TAB).text),
        visible(admin_client.get(f"{TAB}?state=not_linked").text),
        visible(admin_client.get(f"{TAB}/persons/{persons[0]}").text),
        visible(admin_client.get(f"{TAB}?tab=integrations").text),
    ]
    for text in pages:
        assert "not linked" not in text.lower()
