"""An app per test, built with ``create_app`` on the ``database_url`` fixture (SQLite and,
when configured, PostgreSQL), a fake clock, and tokens to call the API with."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from optsync.bootstrap import Context
from optsync.services.accounts import create_token
from optsync.services.links import UnsubscribeLinks
from optsync.store.db import Database
from optsync.store.models import LedgerEntry, OutboxPush, Person
from tests.integration.conftest import BASE_URL

T = TypeVar("T")
TAG_RE = re.compile(r"<[^>]*>")


def visible(page: str) -> str:
    """The page's text as a reader sees it: tags gone, entities decoded. Addresses are
    split into unbreakable pieces (``<span class="nowrap">ann@</span><wbr>…``), so an
    address is looked for in this text, not in the markup."""
    return html.unescape(TAG_RE.sub("", page))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the browser tests' Playwright keeps an
    event loop running in the main thread for the rest of the session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def links(ctx: Context) -> UnsubscribeLinks:
    return UnsubscribeLinks("test", BASE_URL)


def _token(ctx: Context, name: str, admin: bool) -> str:
    with ctx.db.transaction() as s:
        return create_token(s, name, is_admin=admin, now=ctx.clock())


@pytest.fixture
def admin_headers(ctx: Context) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(ctx, 'admin-script', True)}"}


@pytest.fixture
def member_headers(ctx: Context) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(ctx, 'mailer', False)}"}


def counts(db: Database) -> tuple[int, int, int, int]:
    """(persons, unsubscribed persons, ledger entries, outbox rows)."""
    with db.transaction() as s:
        return (
            s.scalar(select(func.count()).select_from(Person)),
            s.scalar(select(func.count()).select_from(Person).where(Person.unsubscribed)),
            s.scalar(select(func.count()).select_from(LedgerEntry)),
            s.scalar(select(func.count()).select_from(OutboxPush)),
        )


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    if field is not None:
        assert body["error"].get("field") == field, body
    return body["error"]
