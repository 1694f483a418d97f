"""Issue 17's first-sight items that only a real browser shows: buttons that line up, the
setup checks' cache (their age, "Re-check", no API calls on a second view), fix texts
without raw Markdown, and persons named by their address, never by a number."""

# ruff: noqa: E501  (the in-page check is JavaScript, kept readable on its own lines)
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN, sign_in
from tests.browser.test_layout import _pages, open_page

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"

MISALIGNED = """
() => {
  // controls side by side in one row (their vertical ranges overlap) must share their
  // top and bottom edges: a 4 px step between a button and its neighbour is visible
  const els = [...document.querySelectorAll('main button, main a.button, main input[type=submit], main select, main input[type=text], main input[type=email], main input[type=search]')]
    .filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden');
  const out = [];
  for (let i = 0; i < els.length; i++) {
    for (let j = i + 1; j < els.length; j++) {
      const a = els[i], b = els[j];
      if (a.parentElement !== b.parentElement) continue;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const overlap = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (overlap <= 0) continue;  // on different lines
      if (Math.abs(ra.top - rb.top) > 1 || Math.abs(ra.bottom - rb.bottom) > 1) {
        out.push((a.textContent.trim() || a.name || a.tagName) + ' [' + Math.round(ra.top) + '-' + Math.round(ra.bottom) + '] beside ' +
                 (b.textContent.trim() || b.name || b.tagName) + ' [' + Math.round(rb.top) + '-' + Math.round(rb.bottom) + ']');
      }
    }
  }
  return out;
}
"""

# a person shown by number instead of address: "#2002", "person 2", "person:1"
BY_NUMBER = re.compile(r"(?<![\w/&])#\d{2,}\b|\bperson \d+\b|\bperson:\d+\b", re.IGNORECASE)


def _visible_text(page) -> str:
    return str(page.evaluate("() => document.querySelector('main').innerText"))


def test_controls_side_by_side_line_up(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, TAB)
    problems: dict[str, list[str]] = {}
    for path in _pages(live):
        open_page(page, live, path)
        found = page.evaluate(MISALIGNED)
        if found:
            problems[path] = found
    assert not problems, problems


def test_fix_texts_show_no_raw_backticks_and_persons_are_addresses(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, TAB)
    for path in [*_pages(live), "/settings/admin/users"]:
        page.goto(live.get(path))
        text = _visible_text(page)
        assert "`" not in text, (path, text[text.index("`") - 80 : text.index("`") + 80])
        assert not BY_NUMBER.search(text), (path, BY_NUMBER.findall(text))


def test_setup_checks_are_reused_with_their_age_and_re_checked_on_request(live, new_page):
    page = new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
    checks = page.get_by_role("region", name="Setup checks")
    expect(checks).to_contain_text("Checked ")
    before = live.emulator.control("GET", "counters")["total"]
    page.reload()
    expect(checks.locator("ul.checks li").first).to_be_visible()
    # the second view reuses the checks: no Salesforce call for them
    assert live.emulator.control("GET", "counters")["total"] == before
    expect(checks.locator(".hint").first).to_contain_text(re.compile(r"Checked (just now|\d+)"))
    checks.get_by_role("button", name="Re-check").click()
    expect(checks).to_contain_text("Checked just now")
    # "Re-check" asks Salesforce again
    assert live.emulator.control("GET", "counters")["total"] > before
