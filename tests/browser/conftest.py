"""The real app in real Chromium: one optsync for the whole browser session.

A session fixture starts what ``optsync demo`` starts, on loopback: the Salesforce
emulator (seeded), a migrated SQLite file database with persons pulled from it and a
stored connection to it, an admin and a member, the web app under uvicorn on a free
port, and the push worker thread. Chromium comes from Debian (``/usr/bin/chromium``),
never from ``playwright install``. Without it the suite is skipped locally, but with
``CI`` set a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from optsync.bootstrap import Context
from optsync.emulator import Emulator, run_emulator
from optsync.salesforce.connection import save_connection
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.accounts import add_user
from optsync.services.persons_pull import pull_persons
from optsync.settings import load_settings
from optsync.store.db import Database
from tests.fixtures_emulator import emulator_options
from tests.integration.salesforce.conftest import config_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADMIN = ("admin@example.com", "browser admin password")
MEMBER = ("member@example.com", "browser member password")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1100, "height": 700}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian Chromium through Playwright")


def _require_browser() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {problem}")
    pytest.skip(f"browser tests skipped: {problem}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveApp:
    url: str
    ctx: Context
    emulator: Emulator

    def get(self, path: str) -> str:
        return self.url + path


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The admin app with a running worker, over an emulator of its own.

    Its own emulator and package scope matter: the worker keeps a live pull and pushes
    running, which must neither spend calls on nor hold streams open in the session's
    shared emulator that later tests count exactly, nor outlive the browser tests.
    """
    _require_browser()

    with run_emulator(emulator_options(tmp_path_factory.mktemp("browser-emulator"))) as emulator:
        yield from _live_app(emulator, tmp_path_factory)


def _live_app(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    import uvicorn

    from optsync.web.admin import install_admin
    from optsync.web.app import create_app
    from optsync.worker.runner import Worker

    emulator.seed(contacts=40, leads=30, opted_out_fraction=0.1)
    data = tmp_path_factory.mktemp("browser-data")
    url = f"sqlite:///{data / 'optsync.db'}"
    db = Database(url)
    db.upgrade()
    port = _free_port()
    settings = load_settings(
        data_dir=data,
        database_url=url,
        secret_key="browser-tests",
        base_url=f"http://127.0.0.1:{port}",
        sf_pubsub_url=emulator.pubsub_url,
    )
    ctx = Context(settings=settings, db=db)
    with db.transaction() as s:
        add_user(s, ADMIN[0], ADMIN[1], is_admin=True, now=ctx.clock())
        add_user(s, MEMBER[0], MEMBER[1], is_admin=False, now=ctx.clock())
        save_connection(s, config_for(emulator), settings.resolved_secret_key, now=ctx.clock())
    with SalesforceGateway(config_for(emulator)) as gateway:
        pull_persons(db, gateway, now=ctx.clock())

    app = create_app(ctx)
    install_admin(app, ctx)  # a no-op once create_app installs it
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="browser-uvicorn", daemon=True)
    thread.start()
    worker = Worker(ctx, poll_s=0.5, schedule=False)
    worker.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield LiveApp(url=f"http://127.0.0.1:{port}", ctx=ctx, emulator=emulator)
    finally:
        server.should_exit = True
        thread.join(10)
        worker.stop(10)
        ctx.close()


@pytest.fixture(scope="package")
def browser(live: LiveApp) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """``new_page(**context_options)``: a page in a fresh browser context (own cookies)."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.new_context(viewport=options.pop("viewport", VIEWPORT), **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    """Poll ``predicate`` (a worker's push, say) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def sign_in(page: Any, live: LiveApp, who: tuple[str, str], path: str = "/settings") -> None:
    page.goto(live.get(path))
    assert "/login?next=" in page.url
    page.get_by_label("Email address").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live.get(path))


def shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def keep_for_docs(path: Path) -> None:
    """Copy a screenshot to docs/screenshots when OPTSYNC_UPDATE_SCREENSHOTS=1."""
    if os.environ.get("OPTSYNC_UPDATE_SCREENSHOTS") == "1":
        docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, docs / path.name)
