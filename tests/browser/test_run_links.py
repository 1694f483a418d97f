"""A sync run's report counts lead to the records behind them (issue 17), in Chromium:
*Pulled* and *Pushed* open the Unsubscribes tab filtered to exactly the persons that run
pulled and pushed, the filter shown as an active one that can be removed."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.sync_settings import get_settings, update_settings
from optsync.store.models import LedgerEntry, OutboxPush, Person
from tests.browser.conftest import ADMIN, shot, sign_in, wait_for

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"
LIST = "section[aria-labelledby=list-h] table tbody"


def _subscribed_contacts(live, n: int) -> list[Person]:
    with live.ctx.db.transaction() as s:
        persons = list(
            s.scalars(
                select(Person)
                .where(Person.unsubscribed.is_(False), Person.salesforce_object == "Contact")
                .order_by(Person.id.desc())
                .limit(n)
            )
        )
        for p in persons:
            s.expunge(p)
    assert len(persons) == n
    return persons


def _sent(live, person_id: int) -> bool:
    with live.ctx.db.transaction() as s:
        state = s.scalars(
            select(OutboxPush.state)
            .where(OutboxPush.person_id == person_id)
            .order_by(OutboxPush.id.desc())
        ).first()
    return state == "sent"


def _run_pushes(live, run_id: int) -> set[str]:
    with live.ctx.db.transaction() as s:
        return set(
            s.scalars(
                select(Person.email)
                .join(OutboxPush, OutboxPush.person_id == Person.id)
                .where(OutboxPush.claimed_by == f"sync run #{run_id}")
            )
        )


def _run_pulls(live, run_id: int) -> set[str]:
    """The persons whose ledger has this run's pull (``store.sync_runs``' evidence)."""
    with live.ctx.db.transaction() as s:
        rows = s.execute(
            select(Person.email, LedgerEntry.evidence)
            .join(LedgerEntry, LedgerEntry.person_id == Person.id)
            .where(LedgerEntry.actor == "sync", LedgerEntry.kind == "unsubscribe")
        ).all()
    return {email for email, evidence in rows if evidence.get("sync_run") == run_id}


def _settings(live, **changes) -> dict:
    with live.ctx.db.transaction() as s:
        before = get_settings(s).as_dict()
        update_settings(s, changes, actor="browser test", now=live.ctx.clock())
    return {k: before[k] for k in changes}


def test_pulled_and_pushed_link_to_exactly_the_runs_persons(live, new_page):
    # the live pull would take the Salesforce opt-out before the run does: off for now
    restore = _settings(live, live_pull="off", field="email_opt_out")
    time.sleep(2.5)  # the worker's live pull stops at its next tick (1 s)
    try:
        to_pull, to_push = _subscribed_contacts(live, 2)
        # pushed: unsubscribed here and pushed, then someone clears the field in Salesforce
        with live.ctx.db.transaction() as s:
            unsubscribe_email(s, to_push.email, source=Source.API, actor="t", now=live.ctx.clock())
        wait_for(lambda: _sent(live, to_push.id))
        live.emulator.control(
            "PATCH", f"records/{to_push.salesforce_id}", {"HasOptedOutOfEmail": False}
        )
        # pulled: opted out in Salesforce
        live.emulator.control(
            "PATCH", f"records/{to_pull.salesforce_id}", {"HasOptedOutOfEmail": True}
        )

        page = new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
        page.get_by_role("button", name="Sync now").click()
        expect(page).to_have_title(re.compile(r"^Sync run #\d+"))
        expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=30_000)
        run_id = int(re.search(r"/runs/(\d+)", page.url).group(1))
        run_url = page.url

        # Pushed N → the persons whose records this run set, and no one else
        pushed = page.locator("dt:has-text('Pushed to Salesforce') + dd").get_by_role("link")
        pushed.click()
        expect(page).to_have_url(re.compile(rf"pushed_by_run={run_id}$"))
        chip = page.locator(".active-filters")
        expect(chip).to_contain_text(f"Pushed by sync run #{run_id}")
        shot(page, "run-pushed-list")
        rows = page.locator(LIST)
        expect(rows).to_contain_text(to_push.email)
        expect(rows).not_to_contain_text(to_pull.email)
        shown = set(rows.locator("td[data-label=Email] a").all_inner_texts())
        assert shown == _run_pushes(live, run_id)
        expect(page.get_by_role("link", name=re.compile(r"^Export .* as CSV"))).to_have_attribute(
            "href", re.compile(rf"pushed_by_run={run_id}")
        )
        # the filter survives another search, and is removed by its own link
        page.get_by_label("Address or Salesforce id").fill(to_push.email)
        page.get_by_role("button", name="Search").click()
        expect(chip).to_contain_text(f"Pushed by sync run #{run_id}")
        expect(page.locator("h2#list-h")).to_contain_text("1 unsubscribed matching the filters")
        chip.get_by_role("link", name=f"Remove the filter: pushed by sync run #{run_id}").click()
        expect(page.locator(".active-filters")).to_have_count(0)
        assert "pushed_by_run" not in page.url and "q=" in page.url

        # Pulled N → the persons this run unsubscribed here
        page.goto(run_url)
        pulled = page.locator("dt:has-text('Pulled from Salesforce') + dd").get_by_role("link")
        pulled.click()
        expect(page).to_have_url(re.compile(rf"pulled_by_run={run_id}$"))
        expect(page.locator(".active-filters")).to_contain_text(f"Pulled by sync run #{run_id}")
        rows = page.locator(LIST)
        expect(rows).to_contain_text(to_pull.email)
        expect(rows).not_to_contain_text(to_push.email)
        shown = set(rows.locator("td[data-label=Email] a").all_inner_texts())
        assert shown == _run_pulls(live, run_id)

        # the run history links the same lists
        page.goto(live.get(f"{TAB}?tab=integrations"))
        history = page.locator("section:has(#runs)")
        expect(history.locator(f'a[href$="pushed_by_run={run_id}"]')).to_have_count(1)
        expect(history.locator(f'a[href$="pulled_by_run={run_id}"]')).to_have_count(1)
    finally:
        _settings(live, **restore)
