"""Lists that scale and failures you can act on (issue 17), in Chromium: the Unsubscribes
tab's filters, sort, page size, keyset pages and CSV export; a bad filter in the URL;
the Failures view's Retry (per person and per code) reaching Salesforce; a *Not in
Salesforce* unsubscribe linked from the page, its push then landing on the record; and
that every page calls an address without a record *Not in Salesforce*."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.store.models import OutboxPush, Person
from optsync.store.runs import create_run, finish_run
from tests.browser.conftest import ADMIN, MEMBER, shot, sign_in, wait_for

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"
FAILURES = f"{TAB}/failures"
DOMAIN = "lists.example.com"


def _seed_list(live) -> None:
    now = live.ctx.clock()
    with live.ctx.db.transaction() as s:
        if s.scalar(select(Person.id).where(Person.email == f"list00@{DOMAIN}")):
            return
        for n in range(30):
            unsubscribe_email(
                s,
                f"list{n:02d}@{DOMAIN}",
                source=Source.CSV,
                actor="t",
                now=now - timedelta(minutes=n),
            )
        for n in range(3):
            unsubscribe_email(s, f"api{n}@{DOMAIN}", source=Source.API, actor="t", now=now)


def _push_state(live, person_id: int) -> str:
    with live.ctx.db.transaction() as s:
        return str(
            s.scalars(
                select(OutboxPush.state)
                .where(OutboxPush.person_id == person_id)
                .order_by(OutboxPush.id.desc())
            ).first()
        )


def test_filter_sort_page_and_export_the_list(live, new_page, tmp_path: Path):
    _seed_list(live)
    page = new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    sign_in(page, live, MEMBER, TAB)
    page.get_by_label("Address or Salesforce id").fill(DOMAIN)
    page.get_by_label("Source").select_option("csv")
    page.get_by_label("Sort").select_option(label="Address A to Z")
    page.get_by_label("Per page").select_option("25")
    page.get_by_role("button", name="Search").click()
    # the filters are in the URL: the page can be shared as it is
    for part in ("source=csv", "sort=email", "size=25", "q=lists.example.com"):
        assert part in page.url
    expect(page.locator("h2#list-h")).to_contain_text("30 unsubscribed matching the filters")
    rows = page.locator("section[aria-labelledby=list-h] table tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(f"list00@{DOMAIN}")
    expect(page.get_by_label("Source")).to_have_value("csv")
    shot(page, "lists-filtered", full_page=True)

    page.get_by_role("link", name="Next 25").click()
    expect(rows).to_have_count(5)
    expect(rows.last).to_contain_text(f"list29@{DOMAIN}")
    page.get_by_role("link", name="Previous 25").click()
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(f"list00@{DOMAIN}")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export 30 as CSV").click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    lines = list(csv.reader(saved.open(encoding="utf-8")))
    assert lines[0][:2] == ["person_id", "email"]
    assert [r[1] for r in lines[1:]] == [f"list{n:02d}@{DOMAIN}" for n in range(30)]

    # a bad value in a shared link: the page names the filter, the form stays usable
    response = page.goto(live.get(f"{TAB}?tab=unsubscribes&since=2026-02-30&source=csv"))
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("From:")
    expect(page.get_by_label("From")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("h2#list-h")).to_contain_text("unsubscribed")


def test_failures_view_retries_and_links_until_salesforce_has_it(live, new_page):
    with live.ctx.db.transaction() as s:
        person = s.scalars(
            select(Person)
            .where(Person.salesforce_object == "Contact", Person.unsubscribed.is_(False))
            .order_by(Person.id.desc())
        ).first()
        assert person is not None
        pid, sf_id = person.id, person.salesforce_id
        # unsubscribed, and its push failed before the worker saw it (one transaction)
        unsubscribe_email(s, person.email, source=Source.API, actor="t", now=live.ctx.clock())
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pid, OutboxPush.state == "pending")
            .values(
                state="failed",
                last_error_code="FIELD_INTEGRITY_EXCEPTION",
                fix="Give the integration user edit access to the record.",
            )
        )
        orphan = unsubscribe_email(
            s, f"orphan@{DOMAIN}", source=Source.PAGE, actor="t", now=live.ctx.clock()
        ).person.id

    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, TAB)
    page.locator(".tabs").get_by_role("link", name="Failures").click()
    expect(page).to_have_url(live.get(FAILURES))
    group = page.locator("#code-FIELD_INTEGRITY_EXCEPTION")
    expect(group).to_contain_text("Give the integration user edit access to the record.")
    expect(group).to_contain_text("1 person")
    shot(page, "failures-view", full_page=True)
    group.get_by_role("button", name=re.compile("^Retry the push of")).click()
    expect(page).to_have_url(live.get(FAILURES))
    expect(page.get_by_role("status").first).to_contain_text("queued again")
    wait_for(lambda: _push_state(live, pid) == "sent")
    record = live.emulator.control("GET", f"records/{sf_id}")
    assert record["HasOptedOutOfEmail"] is True

    # Not in Salesforce: the row's Link… action, with a record Salesforce has but nobody here
    new_id = live.emulator.seed(contacts=1)["contact_ids"][0]
    page.reload()
    unlinked = page.get_by_role("region", name=re.compile("^Not in Salesforce"))
    unlinked.get_by_role("link", name=f"Link orphan@{DOMAIN} to a Salesforce record").click()
    page.get_by_label(re.compile("^Salesforce id")).fill("003 not an id")
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page.locator("#link-error")).to_be_visible()
    page.get_by_label(re.compile("^Salesforce id")).fill(new_id)
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page).to_have_url(live.get(f"{TAB}/persons/{orphan}"))
    wait_for(lambda: _push_state(live, orphan) == "sent")
    assert live.emulator.control("GET", f"records/{new_id}")["HasOptedOutOfEmail"] is True


def test_a_member_sees_failures_without_retry_or_link(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, MEMBER, FAILURES)
    expect(page.get_by_role("heading", name=re.compile("^Failed pushes"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Retry"))).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("^Link "))).to_have_count(0)


def test_a_person_no_record_carries_is_not_in_salesforce(live, new_page):
    """Issue 16's word on every page: an address without a Salesforce record is *Not in
    Salesforce* (not a failure), never "not linked"."""
    email = f"no-record@{DOMAIN}"
    with live.ctx.db.transaction() as s:
        pid = unsubscribe_email(s, email, source=Source.API, actor="t", now=live.ctx.clock())
        pid = pid.person.id
    # the worker looks the address up in Salesforce, finds no record, and settles it
    wait_for(lambda: _push_state(live, pid) == "not_linked")

    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, f"{TAB}/persons/{pid}")
    record = page.locator("dt:has-text('Salesforce record') + dd")
    expect(record).to_have_text("Not in Salesforce")
    expect(page.get_by_role("region", name="Pushes to Salesforce")).to_contain_text(
        "Not in Salesforce"
    )
    assert "not linked" not in page.locator("main").inner_text().lower()

    page.goto(live.get(f"{TAB}?tab=unsubscribes&q={email}"))
    expect(page.locator("section[aria-labelledby=list-h] tbody")).to_contain_text(
        "Not in Salesforce"
    )
    assert "not linked" not in page.locator("main").inner_text().lower()
    page.get_by_label("Push state").select_option(label="Not in Salesforce")
    page.get_by_role("button", name="Search").click()
    assert "state=not_linked" in page.url  # the URL keeps the API's value
    expect(page.locator("section[aria-labelledby=list-h] tbody")).to_contain_text(email)

    page.goto(live.get(FAILURES))
    expect(page.get_by_role("region", name=re.compile("^Not in Salesforce"))).to_contain_text(email)
    assert "not linked" not in page.locator("main").inner_text().lower()

    # a run's report counts them under the same words
    with live.ctx.db.transaction() as s:
        run = create_run(
            s,
            trigger="manual",
            dry_run=True,
            field="HasOptedOutOfEmail",
            now=live.ctx.clock(),
            worker="browser test",
        )
        report = {
            "not_linked": 2,
            "not_in_salesforce": 1,
            "mirror": {"read": "incremental", "records_read": 3},
        }
        finish_run(
            s,
            run.id,
            "browser test",
            status="succeeded",
            error=None,
            report=report,
            now=live.ctx.clock(),
        )
        run_id = run.id
    page.goto(live.get(f"{TAB}/runs/{run_id}"))
    facts = page.locator(".facts")
    expect(facts.locator("dt:has-text('Not in Salesforce') + dd")).to_contain_text(
        "1 unsubscribed address"
    )
    expect(facts.locator("dt:has-text('No primary record') + dd")).to_contain_text("2")
    assert "not linked" not in page.locator("main").inner_text().lower()
