"""Issue 17 in Chromium: the sync-health banner on both tabs, notifications set up and
tested with the answer beside the button, a dry run that lists its records and runs for
real, and the person page's pushes and "Unsubscribe again"."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from optsync.domain.optout import Source
from optsync.services.optouts import resubscribe_email, unsubscribe_email
from optsync.store.models import SyncRun
from tests.browser.conftest import ADMIN, shot, sign_in
from tests.integration.health.servers import WebhookServer

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"
INTEGRATIONS = f"{TAB}?tab=integrations"


def _failed_run(live) -> int:
    now = live.ctx.clock()
    with live.ctx.db.transaction() as s:
        run = SyncRun(
            trigger="schedule",
            dry_run=False,
            status="failed",
            error="Setup check failed: cannot reach Salesforce.",
            field="HasOptedOutOfEmail",
            started_at=now - timedelta(minutes=2),
            finished_at=now - timedelta(minutes=1),
            report={},
        )
        s.add(run)
        s.flush()
        return run.id


def test_the_banner_says_what_fails_in_words_on_both_tabs(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, TAB)
    run_id = _failed_run(live)
    for path in (TAB, INTEGRATIONS):
        page.goto(live.get(path))
        banner = page.get_by_role("region", name=re.compile("^Sync health"))
        expect(banner).to_be_visible()
        expect(banner.get_by_role("heading")).to_contain_text("need")
        expect(banner).to_contain_text("Last successful run")
        expect(banner).to_contain_text("Pushes waiting")
        expect(banner).to_contain_text("Live pull")
        problems = banner.get_by_role("list", name="What is failing")
        expect(problems).to_contain_text(f"The last sync run (#{run_id}) failed")
        expect(problems).to_contain_text("✗ Run failed")  # a sign and words, not colour only
    shot(page, "health-banner")
    page.get_by_role("region", name=re.compile("^Sync health")).get_by_role(
        "link", name="See the run"
    ).click()
    expect(page).to_have_title(re.compile(rf"^Sync run #{run_id}"))


def test_notifications_to_a_webhook_are_saved_and_tested_beside_the_button(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, INTEGRATIONS)
    with WebhookServer() as hook:
        section = page.get_by_role("region", name="Notifications")
        section.get_by_text("Set up notifications").click()
        section.get_by_label("POST notifications as JSON to a URL").check()
        section.get_by_label("Webhook URL").fill("http://hooks.example.com/x")
        section.get_by_role("button", name="Save notifications").click()
        expect(page.locator("#webhook_url-error")).to_contain_text("Use https://")
        expect(page.get_by_label("Webhook URL")).to_have_value("http://hooks.example.com/x")
        page.get_by_label("Webhook URL").fill(hook.url)
        page.get_by_role("button", name="Save notifications").click()
        secret_box = page.locator("#webhook-secret")
        expect(secret_box).to_be_visible()
        expect(secret_box).to_be_in_viewport()
        secret = secret_box.inner_text()
        assert secret.startswith("whsec_")
        page.goto(live.get(INTEGRATIONS))
        assert secret not in page.content()
        page.get_by_role("button", name="Send a test").click()
        result = page.locator("#notify-test-result")
        expect(result).to_contain_text("Webhook: test sent.")
        expect(result).to_be_in_viewport()
        shot(page, "notifications-test")
        [(headers, body)] = hook.hook.requests
        stamp = headers["x-optsync-timestamp"].encode()
        mac = hmac.new(secret.encode(), stamp + b"." + body, hashlib.sha256).hexdigest()
        assert headers["x-optsync-signature"] == "sha256=" + mac
    page.get_by_role("button", name="Send a test").click()  # the receiver is gone
    expect(page.locator("#notify-test-result")).to_contain_text("webhook: ")
    expect(page.locator("#notify-test-result")).to_contain_text("cannot connect")
    # switch the webhook off again, for the other tests
    page.get_by_text("Change the notification settings").click()
    page.get_by_label("POST notifications as JSON to a URL").uncheck()
    page.get_by_role("button", name="Save notifications").click()
    expect(page.get_by_role("status").first).to_contain_text("Notification settings saved")


def test_a_dry_run_lists_its_records_and_runs_for_real(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, INTEGRATIONS)
    live.emulator.seed(contacts=1, opted_out_fraction=1.0)
    page.get_by_role("button", name="Dry run").click()
    expect(page).to_have_title(re.compile(r"^Dry run #\d+"))
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=30_000)
    preview = page.get_by_role("region", name=re.compile(r"^What dry run #\d+ would do"))
    expect(preview).to_be_visible()
    expect(preview.get_by_role("link", name="All as CSV")).to_have_attribute(
        "href", re.compile(r"/preview\.csv$")
    )
    shot(page, "dry-run-preview", full_page=True)
    page.goto(live.get(INTEGRATIONS))
    expect(page.get_by_role("button", name="Run it for real")).to_be_visible()
    page.get_by_role("button", name="Run it for real").click()
    expect(page).to_have_title(re.compile(r"^Sync run #\d+"))
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=30_000)


def test_the_person_page_shows_pushes_and_unsubscribes_again(live, new_page):
    now = live.ctx.clock()
    with live.ctx.db.transaction() as s:
        pid = unsubscribe_email(
            s, "again@example.com", source=Source.ADMIN, actor=f"user:{ADMIN[0]}", now=now,
            evidence={"ip": "198.51.100.7", "user_agent": "Browser test"},
        ).person.id  # fmt: skip
        resubscribe_email(
            s, "again@example.com", source=Source.ADMIN, actor=f"user:{ADMIN[0]}", now=now,
            reason="asked by phone",
        )  # fmt: skip
    page = new_page()
    sign_in(page, live, ADMIN, f"{TAB}/persons/{pid}")
    expect(page.get_by_role("region", name="Pushes to Salesforce")).to_be_visible()
    ledger = page.get_by_role("region", name="Ledger")
    expect(ledger).to_contain_text("198.51.100.7")
    expect(ledger).to_contain_text("asked by phone")
    page.get_by_role("link", name="Unsubscribe again…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe this person again?")
    page.get_by_role("button", name="Unsubscribe again").click()
    expect(page.get_by_role("status").first).to_contain_text("Unsubscribed again")
    expect(page.locator(".facts")).to_contain_text("Unsubscribed")
    expect(page.get_by_role("link", name="Unsubscribe again…")).to_have_count(0)
