"""The admin pages over ``TestClient``: an app per test on each database (``database_url``),
a fake clock, an admin and a member, and helpers that sign in and post forms with the
session's CSRF token the way a browser would."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from optsync.bootstrap import Context
from optsync.services.accounts import add_user
from tests.integration.conftest import BASE_URL

ADMIN = ("admin@example.com", "correct horse battery")
MEMBER = ("member@example.com", "member password 1")
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TAG_RE = re.compile(r"<[^>]*>")


def visible(page: str) -> str:
    """The page's text as a reader sees it: tags gone, entities decoded. Addresses on the
    pages are split into unbreakable pieces (``<span class="nowrap">p07@</span><wbr>…``),
    so an address is looked for in this text, not in the markup."""
    return html.unescape(TAG_RE.sub("", page))


@pytest.fixture
def users(ctx: Context) -> None:
    with ctx.db.transaction() as s:
        add_user(s, ADMIN[0], ADMIN[1], is_admin=True, now=ctx.clock())
        add_user(s, MEMBER[0], MEMBER[1], is_admin=False, now=ctx.clock())


def new_client(app) -> TestClient:
    return TestClient(app, base_url=BASE_URL, raise_server_exceptions=True, follow_redirects=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with new_client(app) as c:
        yield c


def csrf_of(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


def sign_in(client: TestClient, who: tuple[str, str]) -> None:
    token = csrf_of(client)
    r = client.post("/login", data={"email": who[0], "password": who[1], "csrf_token": token})
    assert r.status_code == 303, r.text


def post_form(
    client: TestClient, path: str, data: dict[str, str], *, page: str = "/settings"
) -> object:
    """POST like the browser: with the CSRF token the session's pages carry."""
    return client.post(path, data={**data, "csrf_token": csrf_of(client, page)})


@pytest.fixture
def admin_client(app, users) -> Iterator[TestClient]:
    with new_client(app) as c:
        sign_in(c, ADMIN)
        yield c


@pytest.fixture
def member_client(app, users) -> Iterator[TestClient]:
    with new_client(app) as c:
        sign_in(c, MEMBER)
        yield c
