"""README's tour, followed in Chromium against a running ``optsync demo``.

``make tour`` runs it and rewrites ``docs/screenshots`` from what the demo shows;
``tests/browser/test_readme_tour.py`` runs the same steps without writing, so the README's
tour cannot drift from the demo: every step below is a sentence of README.md "A short
tour", and each checks what that sentence promises.

The demo runs as a user starts it (``optsync demo``, its own data directory, a free web
port and emulator port), in a subprocess; the tour reads the login, the unsubscribe link
and the emulator's control address from what the demo prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 900}
TAB = "/settings/admin/unsubscribes"


@dataclass
class Demo:
    """A running ``optsync demo`` and what it printed."""

    url: str
    admin: tuple[str, str]
    link: str
    contact_email: str
    record_url: str  # the emulator's control URL of that Contact
    ca_bundle: str
    output: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_demo(persons: int = 200, timeout_s: float = 120) -> Iterator[Demo]:
    """``optsync demo`` in a fresh data directory, stopped (Ctrl-C) afterwards."""
    data = Path(tempfile.mkdtemp(prefix="optsync-tour-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env["OPTSYNC_DATA_DIR"] = str(data)
    optsync = Path(sys.executable).with_name("optsync")
    command = [str(optsync), "demo", "--port", str(port), "--emulator-port", "0"]
    proc = subprocess.Popen(
        [*command, "--persons", str(persons)],
        env=env,
        cwd=data,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + timeout_s
        assert proc.stdout is not None
        while not any(line.startswith("Ctrl-C stops everything") for line in lines):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("optsync demo stopped:\n" + "".join(lines))
            lines.append(line)
            if time.monotonic() > deadline:
                raise RuntimeError("optsync demo did not start:\n" + "".join(lines))
        text = "".join(lines)
        login = re.search(r"\(login (\S+) / (\S+)\)", text)
        link = re.search(r"1\. Unsubscribe (\S+): open (\S+) and press", text)
        record = re.search(r"curl -s --cacert (\S+) (https://\S+/records/\w+)\n", text)
        assert login and link and record, text
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/healthz", deadline)
        yield Demo(
            url=url,
            admin=(login.group(1), login.group(2)),
            link=link.group(2),
            contact_email=link.group(1),
            record_url=record.group(2),
            ca_bundle=record.group(1),
            output=lines,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def _wait_http(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _record(demo: Demo) -> dict[str, Any]:
    """The Contact as the emulator has it (its control endpoint: no API call)."""
    context = ssl.create_default_context(cafile=demo.ca_bundle)
    with urllib.request.urlopen(demo.record_url, context=context, timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def take_tour(demo: Demo, browser: Any, screenshots: Path | None) -> dict[str, float]:
    """Follow README's tour; returns figures (the push's latency). Raises on any step that
    does not show what README says."""
    from playwright.sync_api import expect

    figures: dict[str, float] = {}
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()

    def shot(name: str) -> None:
        if screenshots is not None:
            page.evaluate("window.scrollTo(0, 0)")
            screenshots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshots / f"{name}.png"))

    # 1. Open the address and sign in; gear → Settings → Admin Settings → Unsubscribes.
    page.goto(demo.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email address").fill(demo.admin[0])
    page.get_by_label("Password").fill(demo.admin[1])
    page.get_by_role("button", name="Sign in").click()
    page.locator('header a[aria-label="Settings"]').click()
    page.get_by_role("region", name="Admin Settings").get_by_role(
        "link", name="Unsubscribes"
    ).click()
    expect(page.locator('.tabs a[aria-current="page"]')).to_have_text("Unsubscribes")
    expect(page.locator("h2#list-h")).to_contain_text("unsubscribed")
    # the sync-health banner heads the tab
    expect(page.locator("h2#health-h")).to_contain_text("Sync health")

    # 2. Integrations: Sync to Salesforce on, Email Opt Out, Save; every setup check passes;
    #    the next run in the zone and in UTC.
    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("switch", name="Sync to Salesforce").check()
    page.get_by_label("Salesforce Email Opt Out", exact=False).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Settings saved.")).to_be_visible()
    checks = page.get_by_role("region", name="Setup checks").locator("ul.checks")
    expect(checks).to_contain_text("HasOptedOutOfEmail on Contact")
    expect(checks).to_contain_text("HasOptedOutOfEmail on Lead")
    expect(checks).to_contain_text("Change Data Capture")
    expect(checks.locator("li.fail")).to_have_count(0)
    expect(page.locator(".next-run")).to_contain_text("UTC")
    shot("integrations")

    # 3. Dry run: what it would pull; Sync now: the seeded opt-outs become unsubscribes here.
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=60_000)
    expect(page.locator(".facts")).to_contain_text("Would pull from Salesforce")
    expect(page.locator("section.preview")).to_contain_text(
        re.compile(r"would pull [\d,]+ unsubscribes? from Salesforce.* on [\d,]+ Salesforce record")
    )
    expect(page.get_by_role("link", name="All as CSV")).to_be_visible()
    page.get_by_role("link", name="Back to Integrations").click()
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator(".status-line .state-succeeded")).to_be_visible(timeout=60_000)
    expect(page.locator(".facts")).to_contain_text("Pulled from Salesforce")
    shot("sync-report")

    # 4. Run history lists both runs; the Activity chart shows the day's unsubscribes.
    page.get_by_role("link", name="Back to Integrations").click()
    expect(page.locator("section:has(#runs) tbody tr")).to_have_count(2)
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("svg.chart rect.src-salesforce").first).to_be_attached()

    # 5. The printed unsubscribe link, in another browser: Unsubscribe; within a second or
    #    two the Contact has Email Opt Out set and the tab says Pushed.
    other = browser.new_context(viewport=VIEWPORT)
    public = other.new_page()
    public.goto(demo.link)
    expect(public.get_by_text(demo.contact_email)).to_be_visible()
    assert _record(demo)["HasOptedOutOfEmail"] is False
    public.get_by_role("button", name="Unsubscribe").click()
    pressed = time.monotonic()
    # the confirmation offers an Undo for ten minutes
    expect(public.get_by_role("button", name="Undo")).to_be_visible()
    while not _record(demo)["HasOptedOutOfEmail"]:
        if time.monotonic() - pressed > 10:
            raise AssertionError("the Contact's Email Opt Out was not set within 10 s")
        time.sleep(0.05)
    figures["push_s"] = round(time.monotonic() - pressed, 3)
    other.close()

    page.get_by_role("link", name="Unsubscribes", exact=True).last.click()
    page.get_by_role("searchbox").first.fill(demo.contact_email)
    page.get_by_role("searchbox").first.press("Enter")
    row = page.locator("table.list tbody tr", has_text=demo.contact_email)
    expect(row).to_contain_text("Pushed")
    page.goto(demo.url + TAB)
    expect(page.get_by_role("link", name=re.compile(r"^Export [\d,]+ as CSV$"))).to_be_visible()
    shot("unsubscribes")
    row = page.locator("table.list tbody tr", has_text=demo.contact_email)
    row.get_by_role("link").first.click()
    expect(page.locator("body")).to_contain_text("Ledger")
    # the address's Salesforce records, with the field set on the Contact
    records = page.locator("section:has(h2#records-h)")
    expect(records).to_contain_text("Contact")
    expect(page.get_by_role("link", name=re.compile("Remove this unsubscribe"))).to_be_visible()
    shot("person")

    # 6. The Failures tab groups failed pushes by error code, with the fix and Retry.
    page.goto(demo.url + TAB)
    page.locator(".tabs").get_by_role("link", name="Failures").click()
    expect(page.locator('.tabs a[aria-current="page"]')).to_have_text("Failures")
    context.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    parser.add_argument("--persons", type=int, default=2000, help="as `optsync demo --persons`")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with running_demo(persons=args.persons) as demo, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            figures = take_tour(demo, browser, None if args.check else SCREENSHOTS)
        finally:
            browser.close()
    print(f"README tour followed against optsync demo: push landed in {figures['push_s']} s")
    if not args.check:
        print(f"screenshots written to {SCREENSHOTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
