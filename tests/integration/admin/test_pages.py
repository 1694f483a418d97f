"""What admins and members do on the Unsubscribes and Integrations tabs."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import select

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.sync_settings import get_settings
from optsync.store.models import LedgerEntry, OutboxPush, Person
from tests.integration.admin.conftest import csrf_of, post_form, visible

TAB = "/settings/admin/unsubscribes"
SETTINGS_POST = f"{TAB}/integrations/settings"
VALID = {
    "sync_enabled": "on",
    "field": "sales_opt_out",
    "sales_opt_out_field": "Sales_Opt_Out__c",
    "schedule": "0 20 * * *",
    "timezone": "America/Los_Angeles",
}


def _settings(ctx):
    with ctx.db.transaction() as s:
        return get_settings(s)


def _unsubscribe(ctx, email, source=Source.API, when=None):
    with ctx.db.transaction() as s:
        return unsubscribe_email(
            s, email, source=source, actor="t", now=when or ctx.clock()
        ).person.id


def test_settings_errors_are_shown_per_field_and_nothing_is_stored(admin_client, ctx):
    before = _settings(ctx)
    bad = {
        **VALID,
        "sales_opt_out_field": "Not a field",
        "schedule": "61 * * * *",
        "timezone": "Mars/Olympus",
    }
    r = post_form(admin_client, SETTINGS_POST, bad)
    assert r.status_code == 422
    assert "Nothing was saved" in r.text
    for error_id in ("sof-error", "schedule-error", "tz-error"):
        assert f'id="{error_id}"' in r.text, error_id
    assert r.text.count('aria-invalid="true"') == 3
    assert 'value="61 * * * *"' in r.text  # what was typed is shown again
    assert _settings(ctx) == before

    r = post_form(admin_client, SETTINGS_POST, {**VALID, "field": "bogus"})
    assert r.status_code == 422 and 'id="field-error"' in r.text
    assert _settings(ctx) == before


def test_saving_valid_settings_stores_them_and_shows_the_next_run(admin_client, ctx):
    r = post_form(admin_client, SETTINGS_POST, {**VALID, "sales_opt_out_field": "My_Opt__c"})
    assert r.status_code == 303
    saved = _settings(ctx)
    assert saved.sync_enabled and saved.field == "sales_opt_out"
    assert saved.sales_opt_out_field == "My_Opt__c"
    page = admin_client.get(r.headers["location"])
    assert "Settings saved." in page.text
    # 2026-11-24 12:00 UTC is 04:00 in Los Angeles: the next run is 20:00 PST that day
    assert "2026-11-24 20:00 PST" in page.text and "2026-11-25 04:00 UTC" in page.text
    off = {k: v for k, v in VALID.items() if k != "sync_enabled"}
    post_form(admin_client, SETTINGS_POST, off)
    assert _settings(ctx).sync_enabled is False
    assert "The nightly sync is off" in admin_client.get(f"{TAB}?tab=integrations").text


def test_removing_an_unsubscribe_needs_a_reason_and_warns_about_salesforce(admin_client, ctx):
    pid = _unsubscribe(ctx, "ann@example.com")
    confirm = admin_client.get(f"{TAB}/persons/{pid}/remove")
    assert confirm.status_code == 200
    assert "Re-subscribes are never synced" in confirm.text
    assert "No Salesforce id" in confirm.text or "no Salesforce id" in confirm.text
    for reason in ("", "   "):
        r = post_form(
            admin_client,
            f"{TAB}/persons/{pid}/remove",
            {"reason": reason},
            page=f"{TAB}/persons/{pid}/remove",
        )
        assert r.status_code == 422
        assert 'id="reason-error"' in r.text
    with ctx.db.transaction() as s:
        assert s.get(Person, pid).unsubscribed
    r = post_form(
        admin_client, f"{TAB}/persons/{pid}/remove", {"reason": "Asked to hear from us again"}
    )
    assert r.status_code == 303
    with ctx.db.transaction() as s:
        assert not s.get(Person, pid).unsubscribed
        last = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert (last.kind, last.source, last.actor) == (
            "resubscribe",
            "admin",
            "user:admin@example.com",
        )
        assert last.reason == "Asked to hear from us again"
    page = admin_client.get(r.headers["location"])
    assert "Clear the field in Salesforce too" in page.text
    assert "Re-subscribed" in page.text


def test_members_list_search_and_add_but_cannot_remove(member_client, ctx, clock):
    for n in range(55):
        _unsubscribe(ctx, f"p{n:02d}@example.com", when=clock() - timedelta(minutes=n))
    page = member_client.get(TAB)
    assert page.status_code == 200
    assert "55 unsubscribed" in page.text
    assert page.text.count("/settings/admin/unsubscribes/persons/") == 50
    next_link = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert next_link, "a Next link to the second page"
    second = member_client.get(html.unescape(next_link.group(1)))
    assert second.text.count("/settings/admin/unsubscribes/persons/") == 5
    found = member_client.get(f"{TAB}?q=p07")
    assert "1 unsubscribed" in found.text and "p07@example.com" in visible(found.text)
    # the address breaks only after its "@" or before a dot, never mid-word
    assert '<span class="nowrap">p07@</span><wbr><span class="nowrap">example</span>' in found.text
    assert "Not linked" in found.text  # no Salesforce id yet

    r = post_form(
        member_client, f"{TAB}/add", {"email": "New@Example.com", "reason": "reply"}, page=TAB
    )
    assert r.status_code == 303
    person = member_client.get(r.headers["location"])
    assert "new@example.com" in person.text and "Remove this unsubscribe" not in person.text
    with ctx.db.transaction() as s:
        p = s.scalars(select(Person).where(Person.email == "new@example.com")).one()
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.person_id == p.id)).one()
        assert entry.source == "admin" and entry.actor == "user:member@example.com"
        assert s.scalars(select(OutboxPush).where(OutboxPush.person_id == p.id)).one()

    bad = post_form(member_client, f"{TAB}/add", {"email": "not an address"}, page=TAB)
    assert bad.status_code == 422 and 'id="add-error"' in bad.text


def test_push_states_show_pending_pushed_and_failed_with_the_fix(admin_client, ctx):
    with ctx.db.transaction() as s:
        for n in range(3):
            upsert_person(
                s,
                PersonInput(n + 1, f"c{n}@example.com", make_id("003", n + 1), "Contact"),
                ctx.clock(),
            )
    ids = [_unsubscribe(ctx, f"c{n}@example.com") for n in range(3)]
    with ctx.db.transaction() as s:
        rows = {r.person_id: r for r in s.scalars(select(OutboxPush))}
        rows[ids[1]].state, rows[ids[1]].sent_at = "sent", ctx.clock()
        rows[ids[2]].state = "failed"
        rows[ids[2]].last_error_code = "INVALID_FIELD"
        rows[ids[2]].fix = "Create the field on Contact."
    page = admin_client.get(TAB).text
    assert "Pending" in page and "Pushed" in page
    assert "INVALID_FIELD" in page and "Fix: Create the field on Contact." in page


def test_the_chart_renders_the_last_30_days_with_data(admin_client, ctx, clock):
    _unsubscribe(ctx, "a@example.com", Source.API)
    _unsubscribe(ctx, "b@example.com", Source.ADMIN)
    _unsubscribe(ctx, "c@example.com", Source.ADMIN, when=clock() - timedelta(days=3))
    _unsubscribe(ctx, "old@example.com", Source.API, when=clock() - timedelta(days=45))
    with ctx.db.transaction() as s:
        push = s.scalars(select(OutboxPush)).first()
        push.state, push.sent_at = "sent", clock()
    page = admin_client.get(f"{TAB}?tab=integrations").text
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg" class="chart"')
    svg = page[start : page.index("</svg>", start)]
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "3 unsubscribes" in svg and "1 pushes sent" in svg  # the old one is outside
    assert svg.count('class="bar src-admin"') == 2 and svg.count('class="bar src-api"') == 1
    assert svg.count('class="bar sent"') == 1
    table = page[page.index("The chart's numbers as a table") :]
    assert table.count('<tr><th scope="row" class="nowrap">') == 30  # a date stays on one line
    assert "2026-11-24</th><td>1</td><td>1</td><td>2</td><td>1</td><td>0</td>" in table


def test_a_run_can_be_started_and_its_page_refreshes_until_done(admin_client, ctx):
    r = post_form(admin_client, f"{TAB}/runs", {"mode": "dry_run"})
    assert r.status_code == 303
    run_path = r.headers["location"]
    assert run_path.startswith(f"{TAB}/runs/")
    import time

    for _ in range(50):
        page = admin_client.get(run_path)
        if "state-running" not in page.text:
            break
        assert page.headers["refresh"] == "2"
        assert '<meta http-equiv="refresh" content="2">' in page.text
        time.sleep(0.1)
    # no Salesforce connection: the run fails at its setup check, and says how to fix it
    assert "state-failed" in page.text and "optsync salesforce connect" in page.text
    assert "refresh" not in page.headers
    history = admin_client.get(f"{TAB}?tab=integrations").text
    assert run_path in history


def test_unknown_person_and_run_get_html_404s(admin_client):
    for path in (f"{TAB}/persons/999999", f"{TAB}/runs/999999", f"{TAB}?tab=nope"):
        r = admin_client.get(path)
        assert r.status_code == 404 and "<title>" in r.text


def test_pages_have_titles_breadcrumbs_and_labelled_inputs(admin_client, ctx):
    import re

    pid = _unsubscribe(ctx, "lab@example.com")
    for path in (
        "/settings",
        TAB,
        f"{TAB}?tab=integrations",
        f"{TAB}/persons/{pid}",
        f"{TAB}/persons/{pid}/remove",
    ):
        html = admin_client.get(path).text
        assert re.search(r"<title>[^<]+ · optsync</title>", html), path
        if path != "/settings":
            assert 'aria-label="Breadcrumb"' in html, path
        for input_id in re.findall(r'<(?:input|textarea)[^>]*\bid="([^"]+)"', html):
            assert f'for="{input_id}"' in html, (path, input_id)
        assert csrf_of(admin_client, path)


def test_a_second_run_while_one_runs_lands_on_the_running_one(admin_client, ctx):
    from optsync.services.sync_run import start_run

    running = start_run(ctx.db, trigger="manual", dry_run=False, now=ctx.clock())
    r = post_form(admin_client, f"{TAB}/runs", {"mode": "sync"})
    assert r.status_code == 303 and r.headers["location"] == f"{TAB}/runs/{running}"
    page = admin_client.get(r.headers["location"])
    assert "already in progress" in page.text
    assert page.headers["refresh"] == "2" and "state-running" in page.text
