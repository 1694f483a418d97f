"""A new admin's path through optsync, in Chromium: sign in, gear → Settings → Admin
Settings → Unsubscribes → Integrations, turn the sync on, pick each field, see the setup
checks, dry run and real sync with live progress, the report and the chart; then an
unsubscribe through an email link reaching Salesforce, and the refusals (member, CSRF)."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from optsync.services.links import UnsubscribeLinks
from optsync.store.models import Person
from tests.browser.conftest import ADMIN, MEMBER, keep_for_docs, shot, sign_in

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"


def test_a_new_admin_sets_up_the_sync_and_runs_it(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN)
    page.locator('header a[aria-label="Settings"]').click()
    expect(page).to_have_title(re.compile("^Settings"))
    admin_settings = page.get_by_role("region", name="Admin Settings")
    admin_settings.get_by_role("link", name="Unsubscribes").click()
    expect(page.locator('.tabs a[aria-current="page"]')).to_have_text("Unsubscribes")
    expect(page.locator("h2#list-h")).to_contain_text("unsubscribed")
    page.get_by_role("link", name="Integrations").click()
    expect(page.locator('.tabs a[aria-current="page"]')).to_have_text("Integrations")

    # turn the sync on with Sales Opt Out, then back to Email Opt Out
    switch = page.get_by_role("switch", name="Sync to Salesforce")
    expect(switch).not_to_be_checked()
    switch.check()
    page.get_by_label("Sales Opt Out", exact=False).first.check()
    page.get_by_label("Sales Opt Out API name").fill("Sales_Opt_Out__c")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    checks = page.get_by_role("region", name="Setup checks").locator("ul.checks")
    expect(checks).to_contain_text("Sales_Opt_Out__c on Contact")
    expect(checks).to_contain_text("Sales_Opt_Out__c on Lead")
    expect(page.locator(".next-run")).to_contain_text("America/Los_Angeles")
    expect(page.locator(".next-run")).to_contain_text("UTC")

    page.get_by_label("Salesforce Email Opt Out", exact=False).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    expect(page.get_by_role("switch", name="Sync to Salesforce")).to_be_checked()
    expect(checks).to_contain_text("HasOptedOutOfEmail on Contact")
    expect(checks.locator("li.fail")).to_have_count(0)
    page.evaluate("window.scrollTo(0, 0)")
    keep_for_docs(shot(page, "integrations"))

    # a bad schedule is refused next to its field, and nothing is saved
    page.get_by_label("Schedule (cron)").fill("every night")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#schedule-error")).to_be_visible()
    expect(page.get_by_label("Schedule (cron)")).to_have_attribute("aria-invalid", "true")
    page.goto(live.get(f"{TAB}?tab=integrations"))
    expect(page.get_by_label("Schedule (cron)")).to_have_value("0 20 * * *")

    # dry run: the status page refreshes itself until the report is there
    page.get_by_role("button", name="Dry run").click()
    expect(page).to_have_title(re.compile(r"^Dry run #\d+"))
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=30_000)
    expect(page.locator(".facts")).to_contain_text("Would pull from Salesforce")
    would_pull = _count(page.locator("dt:has-text('Would pull') + dd").inner_text())
    # "Unsubscribed here": the count before the run, then what it would be
    here = page.locator("dt:has-text('Unsubscribed here') + dd")
    expect(here).to_contain_text("before the run; would be:")
    before, would_be = _before_after(here.inner_text())
    assert would_be == before + would_pull
    assert would_be > 0  # the seeded org has opted-out records

    # the real sync pulls them. With the sync on, the live pull may already have pulled
    # some (it polls the seeded records' window): either way the run ends with every
    # opted-out record unsubscribed here, the number the dry run said.
    page.get_by_role("link", name="Back to Integrations").click()
    page.get_by_role("button", name="Sync now").click()
    expect(page).to_have_title(re.compile(r"^Sync run #\d+"))
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=30_000)
    pulled = _count(page.locator("dt:has-text('Pulled from Salesforce') + dd").inner_text())
    here = page.locator("dt:has-text('Unsubscribed here') + dd")
    expect(here).to_contain_text("before the run; after the run:")
    before, after = _before_after(here.inner_text())
    assert after == before + pulled and after == would_be
    assert pulled <= would_pull
    keep_for_docs(shot(page, "sync-report"))

    # history and chart
    page.get_by_role("link", name="Back to Integrations").click()
    rows = page.locator("section:has(#runs) tbody tr")
    expect(rows).to_have_count(2)
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator("rect.src-salesforce").count() >= 1
    expect(chart.locator("desc")).to_contain_text(f"{after} unsubscribes")
    page.locator("#activity").scroll_into_view_if_needed()
    shot(page, "chart")
    shot(page, "integrations-full", full_page=True)

    # the pulled persons are on the Unsubscribes tab, source Salesforce
    page.get_by_role("link", name="Unsubscribes", exact=True).last.click()
    expect(page.locator("h2#list-h")).to_contain_text(f"{after} unsubscribed")
    expect(page.locator("table.list tbody")).to_contain_text("Salesforce")
    keep_for_docs(shot(page, "unsubscribes"))


def _count(text: str) -> int:
    """A count as the pages print it, with thousands separators."""
    return int(text.strip().replace(",", ""))


def _before_after(text: str) -> tuple[int, int]:
    """ "7 before the run; after the run: 9" (or "would be: 9") as (7, 9)."""
    match = re.search(r"([\d,]+) before the run; (?:would be|after the run): ([\d,]+)", text)
    assert match, text
    return _count(match.group(1)), _count(match.group(2))


def _subscribed_contact(live) -> Person:
    with live.ctx.db.transaction() as s:
        person = s.scalars(
            select(Person)
            .where(Person.unsubscribed.is_(False), Person.salesforce_object == "Contact")
            .order_by(Person.id)
        ).first()
        s.expunge(person)
    return person


def test_an_unsubscribe_link_reaches_salesforce_and_removing_it_warns(live, new_page):
    person = _subscribed_contact(live)
    link = UnsubscribeLinks.from_settings(live.ctx.settings).for_person(person.id).url

    admin = new_page()
    sign_in(admin, live, ADMIN, f"{TAB}?q={person.email}")
    expect(admin.locator("h2#list-h")).to_contain_text("0 unsubscribed")

    visitor = new_page()  # someone else's browser: no session at all
    visitor.goto(link)
    expect(visitor.get_by_text(person.email)).to_be_visible()
    visitor.get_by_role("button", name="Unsubscribe").click()
    expect(visitor.get_by_text("You are unsubscribed")).to_be_visible()

    deadline = time.monotonic() + 15
    while True:
        admin.reload()
        state = admin.locator("table.list .push-cell .state").first
        if state.count() and state.inner_text() == "Pushed":
            break
        assert time.monotonic() < deadline, "the push did not reach Salesforce in 15 s"
        time.sleep(0.3)
    expect(admin.locator("table.list")).to_contain_text("Unsubscribe page")
    record = live.emulator.control("GET", f"records/{person.salesforce_id}")
    assert record["HasOptedOutOfEmail"] is True

    # the ledger, then removing it: the warning and the live Salesforce check
    admin.get_by_role("link", name=person.email).click()
    expect(admin.locator("section:has(#ledger-h) table.list")).to_contain_text("Unsubscribe page")
    admin.get_by_role("link", name="Remove this unsubscribe…").click()
    expect(admin.locator(".warning")).to_contain_text("Re-subscribes are never synced")
    expect(admin.locator(".warning")).to_contain_text(
        "Salesforce still shows HasOptedOutOfEmail set on this record"
    )
    admin.get_by_role("button", name="Remove the unsubscribe").click()
    expect(admin.locator("#reason-error")).to_be_visible()  # a reason is required
    admin.get_by_label("Reason (required)", exact=False).fill("Asked to hear from us again")
    admin.get_by_role("button", name="Remove the unsubscribe").click()
    expect(admin.get_by_role("status").first).to_contain_text("Clear the field in Salesforce")
    expect(admin.locator(".facts")).to_contain_text("Subscribed")


def test_a_member_can_add_but_is_refused_the_admin_pages(live, new_page):
    page = new_page()
    sign_in(page, live, MEMBER, TAB)
    expect(page.locator(".tabs a")).to_have_text(["Unsubscribes", "Failures"])  # no Integrations
    page.get_by_label("Email address", exact=True).fill("member-added@example.com")
    page.get_by_label("Reason", exact=False).fill("replied STOP")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("member-added@example.com")
    expect(page.get_by_role("link", name="Remove this unsubscribe…")).to_have_count(0)
    for path in (f"{TAB}?tab=integrations", f"{TAB}/runs/1"):
        response = page.goto(live.get(path))
        assert response is not None and response.status == 403
        expect(page.locator("h1")).to_have_text("Admins only")
    shot(page, "member-refused")


def test_a_form_post_without_the_csrf_token_is_refused(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
    response = page.request.post(
        live.get(f"{TAB}/integrations/settings"),
        form={
            "sync_enabled": "",
            "field": "email_opt_out",
            "schedule": "0 20 * * *",
            "timezone": "UTC",
            "sales_opt_out_field": "Sales_Opt_Out__c",
        },
        max_redirects=0,
    )
    assert response.status == 403
    assert "Form expired" in response.text()
    page.reload()
    expect(page.get_by_label("Time zone")).to_have_value("America/Los_Angeles")


def test_phone_width_needs_no_horizontal_scroll(live, new_page):
    page = new_page(viewport={"width": 375, "height": 812})
    sign_in(page, live, ADMIN, TAB)
    for path in (TAB, f"{TAB}?tab=integrations", "/settings"):
        page.goto(live.get(path))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
        if "integrations" in path:
            shot(page, "phone-integrations", full_page=True)
    page.goto(live.get(TAB))
    shot(page, "phone-unsubscribes", full_page=True)


def test_keyboard_focus_is_visible(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, "/settings")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # the brand link
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
