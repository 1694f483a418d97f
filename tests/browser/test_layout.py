"""Every admin page at 1280 px and at 375 px: nothing scrolls sideways, no element's
content spills out of a box that clips it, addresses, dates and Salesforce ids never
break inside a word, and axe-core finds no serious or critical accessibility problem.

The break check is measured, not guessed: every email address, ISO date and Salesforce
id in the page's text is wrapped in a DOM ``Range`` and its rendered line boxes are
counted; a token on more than one line may break only right after its "@" or before one of
its dots (the allowed points for an address too long for its box), never
inside a word or at a hyphen. Screenshots of each page and width
go to test-artifacts/screenshots.
"""

# ruff: noqa: E501  (the in-page checks are JavaScript, kept readable on their own lines)
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.store.models import OutboxPush, Person
from tests.browser.conftest import ADMIN, shot, sign_in

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"
AXE = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / "axe-core" / "axe.min.js"
LONG = "firstname.middlename.lastname.department@subsidiary.example-company.com"
FAILING = "failing.firstname.lastname.department@subsidiary.example-company.com"
WIDTHS = (1280, 375)

BROKEN_TOKENS = """
() => {
  const token = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}|\\d{4}-\\d{2}-\\d{2}|\\b00[3Q][A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?\\b/g;
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest('script,style,title,.sr-only,[hidden]') || !el.getClientRects().length) continue;
    if (getComputedStyle(el).visibility === 'hidden') continue;
    for (const m of node.data.matchAll(token)) {
      const tops = [];
      for (let i = 0; i < m[0].length; i++) {
        const r = document.createRange();
        r.setStart(node, m.index + i); r.setEnd(node, m.index + i + 1);
        const rect = r.getClientRects()[0];
        if (rect && rect.width > 0) tops.push([i, Math.round(rect.top)]);
      }
      for (let k = 1; k < tops.length; k++) {
        const at = tops[k][0];
        if (tops[k][1] > tops[k - 1][1] + 2 && m[0][at - 1] !== '@' && m[0][at] !== '.') {
          out.push(m[0] + ' breaks after "' + m[0].slice(0, tops[k][0]) + '" in <' + el.tagName.toLowerCase() + ' class="' + el.className + '">');
          break;
        }
      }
    }
  }
  return out;
}
"""

SPILLS = """
(width) => {
  const out = [];
  if (document.documentElement.scrollWidth > width) out.push('page is ' + document.documentElement.scrollWidth + ' px wide');
  for (const el of document.querySelectorAll('main *')) {
    if (el.closest('.sr-only, svg') || el.matches('input, select, textarea')) continue;
    const s = getComputedStyle(el);
    if (s.display === 'none' || !el.getClientRects().length) continue;
    const scrolls = ['auto', 'scroll'].includes(s.overflowX);
    // a box that lets content spill out of it (or clips it) without offering a scroll
    if (!scrolls && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 1 && s.display !== 'inline') {
      out.push('<' + el.tagName.toLowerCase() + ' class="' + el.className + '"> content ' + el.scrollWidth + ' px in ' + el.clientWidth + ' px');
    }
    const r = el.getBoundingClientRect();
    if (r.right > width + 1 && !el.closest('.table-wrap,.chart-scroll')) {
      out.push('<' + el.tagName.toLowerCase() + ' class="' + el.className + '"> ends at ' + Math.round(r.right) + ' px');
    }
  }
  return out.slice(0, 10);
}
"""


def _pages(live) -> list[str]:
    with live.ctx.db.transaction() as s:
        person = s.scalars(select(Person).where(Person.email == LONG)).first()
        if person is None:
            person = unsubscribe_email(
                s, LONG, source=Source.ADMIN, actor=f"user:{ADMIN[0]}", now=live.ctx.clock()
            ).person
        person_id = person.id
        failing = s.scalars(select(Person).where(Person.email == FAILING)).first()
        if failing is None:  # a failed push, for the Failures view
            failing = unsubscribe_email(
                s, FAILING, source=Source.API, actor="t", now=live.ctx.clock()
            ).person
            s.execute(
                update(OutboxPush)
                .where(OutboxPush.person_id == failing.id)
                .values(
                    state="failed",
                    last_error_code="INSUFFICIENT_ACCESS_OR_READONLY",
                    fix="Give the integration user edit access to `HasOptedOutOfEmail`.",
                )
            )
    dry_id, again_id = _health_pages(live, person_id)
    return [
        "/settings",
        TAB,
        f"{TAB}?tab=unsubscribes&source=admin&state=not_linked&sort=email&size=25&since=2026-01-01",
        f"{TAB}?tab=unsubscribes&pulled_by_run=1&pushed_by_run=2",  # active-filter chips
        f"{TAB}/failures",
        f"{TAB}/persons/{person_id}/link",
        f"{TAB}?tab=integrations",
        f"{TAB}/persons/{person_id}",
        f"{TAB}/persons/{person_id}/remove",
        "/settings/admin/users",
        f"{TAB}/integrations/connection/delete",
        f"{TAB}/runs/{dry_id}",
        f"{TAB}/persons/{again_id}/unsubscribe",
    ]


LAYOUT_RUN = "layout check: a failed run with a long error to wrap"


def _health_pages(live, person_id: int) -> tuple[int, int]:
    """A failed run (the banner's failing state), a dry run listing records with a long
    address, and a re-subscribed person (the "Unsubscribe again" confirmation)."""
    from datetime import timedelta

    from optsync.services.optouts import resubscribe_email
    from optsync.store.models import SyncRun

    now = live.ctx.clock()
    with live.ctx.db.transaction() as s:
        dry = s.scalars(select(SyncRun).where(SyncRun.error == LAYOUT_RUN)).first()
        if dry is None:
            s.add(
                SyncRun(
                    trigger="manual", dry_run=False, status="failed", error=LAYOUT_RUN,
                    field="HasOptedOutOfEmail", started_at=now - timedelta(minutes=3),
                    finished_at=now - timedelta(minutes=2), report={},
                )
            )  # fmt: skip
            row = {"person_id": person_id, "email": LONG, "object": "Contact",
                   "salesforce_id": "003000000000001AAA"}  # fmt: skip
            dry = SyncRun(
                trigger="manual", dry_run=True, status="succeeded", error=LAYOUT_RUN,
                field="HasOptedOutOfEmail", started_at=now - timedelta(minutes=1),
                finished_at=now, report={"pulled": 1, "pushed": 1, "would_pull": [row],
                                         "would_push": [row], "preview_listed": 100},
            )  # fmt: skip
            s.add(dry)
            s.flush()
        again = s.scalars(select(Person).where(Person.email == "again." + LONG)).first()
        if again is None:
            again = unsubscribe_email(
                s, "again." + LONG, source=Source.ADMIN, actor=f"user:{ADMIN[0]}", now=now
            ).person
            resubscribe_email(
                s, again.email, source=Source.ADMIN, actor=f"user:{ADMIN[0]}", now=now,
                reason="layout check",
            )  # fmt: skip
        return dry.id, again.id


def open_page(page, live, path: str) -> None:
    """Open one of :func:`_pages` with every collapsed section of the Integrations tab open."""
    response = page.goto(live.get(path))
    assert response is not None and response.status == 200, path
    if "integrations" in path and "delete" not in path:
        page.locator("details").evaluate_all("ds => ds.forEach(d => d.open = true)")


@pytest.mark.parametrize("width", WIDTHS)
def test_admin_pages_fit_and_never_break_an_address_mid_word(live, new_page, width):
    page = new_page(viewport={"width": width, "height": 900})
    sign_in(page, live, ADMIN, TAB)
    problems: dict[str, list[str]] = {}
    for path in _pages(live):
        open_page(page, live, path)
        found = page.evaluate(SPILLS, width) + page.evaluate(BROKEN_TOKENS)
        if found:
            problems[path] = found
        name = path.strip("/").replace("/", "-").replace("?tab=", "-") or "root"
        shot(page, f"layout-{width}-{name}", full_page=True)
    assert not problems, problems


def test_axe_finds_no_serious_violations(live, new_page):
    assert AXE.exists(), "run `npm ci` in tests/clients (axe-core)"
    # the pages' Content-Security-Policy forbids scripts: only the test's axe may run
    page = new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    sign_in(page, live, ADMIN, TAB)
    serious: dict[str, list[str]] = {}
    for path in [*_pages(live), "/login"]:
        if path == "/login":
            page.context.clear_cookies()
        page.goto(live.get(path))
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if bad:
            serious[path] = bad
    assert not serious, serious


def test_every_control_has_a_label_and_state_is_not_colour_alone(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, TAB)
    for path in _pages(live):
        page.goto(live.get(path))
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                              && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
                .map(el => el.outerHTML.slice(0, 100))"""
        )
        assert not unlabelled, (path, unlabelled)
        # every coloured state badge says its state in words too
        wordless = page.evaluate(
            """() => [...document.querySelectorAll('.state')].filter(el => !el.innerText.trim()).length"""
        )
        assert wordless == 0, path


def test_the_favicon_and_root_answer_on_every_page(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(live.get("/"))
    assert "/login" in page.url
    sign_in(page, live, ADMIN, TAB)
    for path in _pages(live):
        page.goto(live.get(path))
    # every page names its icon, and a browser asking /favicon.ico gets one too
    assert page.locator('link[rel="icon"]').count() == 1
    icon = page.goto(live.get("/favicon.ico"))
    assert icon is not None and icon.status == 200
    assert icon.headers["content-type"].startswith("image/")
    assert not missing, missing


# -- the public /u/ pages (issue 17): every page, three languages, a long address ------

PUBLIC_LONG = (
    "a.very.long.recipient.name.for.the.layout.check@marketing-department.example-company.com"
)
LANGS = {"en": "en", "de": "de-DE,de;q=0.9,en;q=0.5", "zh": "zh-CN,zh;q=0.9"}
PUBLIC_TEXTS = {
    "en": ("Unsubscribe", "You are unsubscribed", "Undo", "You are subscribed again"),
    "de": ("Abmelden", "Sie sind abgemeldet", "Rückgängig machen", "Sie sind wieder angemeldet"),
    "zh": ("退订", "您已退订", "撤销退订", "您已重新订阅"),
}
HTML_LANG = {"en": "en", "de": "de", "zh": "zh-Hans"}


def _public_link(live) -> str:
    """The link of a person with a long address and no Salesforce record (so no push
    reaches Salesforce and no live pull opts them out again between the checks)."""
    from optsync.services.links import UnsubscribeLinks
    from optsync.services.optouts import get_or_create_person

    with live.ctx.db.transaction() as s:
        person, _ = get_or_create_person(s, PUBLIC_LONG, live.ctx.clock())
        person_id = person.id
    return UnsubscribeLinks.from_settings(live.ctx.settings).for_person(person_id).url


def _post_bad_undo(page, link: str) -> None:
    """Submit an undo form with a forged token, as a hand-edited page would."""
    with page.expect_navigation():
        page.evaluate(
            """(action) => { const f = document.createElement('form'); f.method = 'post';
                 f.action = action; const i = document.createElement('input'); i.type = 'hidden';
                 i.name = 'undo'; i.value = 'forged'; f.appendChild(i); document.body.appendChild(f); f.submit(); }""",
            link.removeprefix(link.split("/u/")[0]) + "/undo",
        )


def _walk_public_pages(page, live, lang: str, check) -> None:
    """Confirm → (answer the question) → done → Undo → subscribed again → forged undo →
    bad link, calling ``check(name)`` on each rendered page."""
    from playwright.sync_api import expect

    heading, done, undo, undone = PUBLIC_TEXTS[lang]
    link = _public_link(live)
    page.goto(link)
    assert page.locator("html").get_attribute("lang") == HTML_LANG[lang]
    expect(page.locator("h1")).to_have_text(heading)
    expect(page.locator("main")).to_contain_text(PUBLIC_LONG)
    check("confirm")
    page.locator("input[name=reason]").last.check()  # "other", by its label's radio
    page.locator("textarea[name=reason_text]").fill("Layout check")
    page.locator("form button[type=submit]").click()
    expect(page.locator("h1")).to_have_text(done)
    check("done")
    page.get_by_role("button", name=undo).click()
    expect(page.locator("h1")).to_have_text(undone)
    check("undone")
    _post_bad_undo(page, link)
    assert page.locator("h1").count() == 1
    check("undo-refused")
    page.goto(link[: len(link) - 6])  # a truncated link
    check("bad-link")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", list(LANGS))
def test_public_pages_fit_and_never_break_an_address_mid_word(live, new_page, width, lang):
    page = new_page(
        viewport={"width": width, "height": 900},
        extra_http_headers={"Accept-Language": LANGS[lang]},
    )
    problems: dict[str, list[str]] = {}

    def check(name: str) -> None:
        found = page.evaluate(SPILLS, width) + page.evaluate(BROKEN_TOKENS)
        if found:
            problems[name] = found
        shot(page, f"layout-{width}-public-{lang}-{name}", full_page=True)

    _walk_public_pages(page, live, lang, check)
    assert not problems, problems


@pytest.mark.parametrize("lang", list(LANGS))
def test_public_pages_have_no_serious_axe_violations_and_label_every_control(live, new_page, lang):
    assert AXE.exists(), "run `npm ci` in tests/clients (axe-core)"
    page = new_page(
        viewport={"width": 1280, "height": 900},
        bypass_csp=True,
        extra_http_headers={"Accept-Language": LANGS[lang]},
    )
    serious: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), textarea, button')]
                .filter(el => !(el.labels && el.labels.length) && !(el.tagName === 'BUTTON' && el.textContent.trim()))
                .map(el => el.outerHTML.slice(0, 100))"""
        )
        if bad or unlabelled:
            serious[name] = bad + unlabelled

    _walk_public_pages(page, live, lang, check)
    assert not serious, serious


def test_the_recipient_unsubscribes_with_a_reason_and_undoes_it_in_german(live, new_page):
    """The whole path in Chromium: a GET changes nothing, the answer lands in the ledger
    evidence, Undo re-subscribes with its own ledger entry."""
    from playwright.sync_api import expect

    from optsync.store.models import LedgerEntry

    link = _public_link(live)
    with live.ctx.db.transaction() as s:
        person = s.scalars(select(Person).where(Person.email == PUBLIC_LONG)).one()
        person_id, before = person.id, len(person.events)
        assert not person.unsubscribed
    page = new_page(extra_http_headers={"Accept-Language": "de-CH, fr;q=0.5"})
    for _ in range(2):  # a link scanner's GETs
        page.goto(link)
    page.get_by_label("Ich habe mich nie für diese E-Mails angemeldet").check()
    page.get_by_role("button", name="Abmelden").click()
    expect(page.locator("h1")).to_have_text("Sie sind abgemeldet")
    expect(page.locator("main")).to_contain_text("Danke, dass Sie uns den Grund genannt haben.")
    with live.ctx.db.transaction() as s:
        events = s.scalars(
            select(LedgerEntry).where(LedgerEntry.person_id == person_id).order_by(LedgerEntry.id)
        ).all()
        assert len(events) == before + 1
        assert events[-1].source == "page"
        assert events[-1].evidence["reason_choice"] == "never_signed_up"
        assert "Chrome" in (events[-1].evidence["user_agent"] or "")
    page.get_by_role("button", name="Rückgängig machen").click()
    expect(page.locator("h1")).to_have_text("Sie sind wieder angemeldet")
    with live.ctx.db.transaction() as s:
        person = s.get(Person, person_id)
        assert not person.unsubscribed
        last = s.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.person_id == person_id)
            .order_by(LedgerEntry.id.desc())
        ).first()
        assert last.kind == "resubscribe" and last.source == "page"
    page.get_by_role("link", name="Erneut abmelden").click()
    expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
