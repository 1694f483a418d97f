"""While the database cannot be reached every route answers 503 with Retry-After (HTML
for pages, the JSON error shape for the API), nothing claims success, and the log names
the failure without the statement's parameters."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from optsync.bootstrap import Context
from optsync.domain.optout import Source
from optsync.services.bulk_unsubscribes import ByIdRequest
from optsync.services.links import UnsubscribeLinks
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.web import batching
from optsync.web.app import create_app
from optsync.web.batching import GroupCommit
from tests.integration.conftest import BASE_URL
from tests.integration.web.conftest import run_async

UNREACHABLE = {
    # nothing listens on port 1; connect_timeout keeps a filtered port from hanging
    "postgresql": "postgresql://postgres@127.0.0.1:1/optsync",
    # a directory that does not exist: SQLite cannot open the file
    "sqlite": "sqlite:////nonexistent-optsync-dir/optsync.db",
}


@pytest.fixture(params=sorted(UNREACHABLE))
def down_client(request, tmp_path: Path, clock):
    url = UNREACHABLE[request.param]
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="test", base_url=BASE_URL
    )
    ctx = Context(settings=settings, db=Database(url), clock=clock)
    try:
        with TestClient(create_app(ctx), base_url=BASE_URL, raise_server_exceptions=False) as c:
            yield c
    finally:
        ctx.close()


def test_the_one_click_post_says_nothing_was_recorded_and_to_retry(down_client, caplog):
    token = UnsubscribeLinks("test", BASE_URL).token(42)
    with caplog.at_level(logging.ERROR, logger="optsync.web"):
        r = down_client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 503
    assert r.headers["retry-after"] == "30"
    assert r.headers["content-type"].startswith("text/html")
    assert "could not record your request" in r.text and "You are unsubscribed" not in r.text
    assert "database unavailable" in caplog.text
    assert token not in caplog.text and "UPDATE" not in caplog.text


def test_the_page_and_the_api_answer_503(down_client):
    token = UnsubscribeLinks("test", BASE_URL).token(42)
    page = down_client.get(f"/u/{token}")
    assert page.status_code == 503 and "try again" in page.text
    api = down_client.post(
        "/api/v1/unsubscribes",
        json={"email": "ann@example.com"},
        headers={"Authorization": "Bearer osk_whatever"},
    )
    assert api.status_code == 503 and api.headers["retry-after"] == "30"
    assert api.json()["error"]["code"] == "not_ready"
    assert down_client.get("/readyz").status_code == 503


def test_the_openapi_document_declares_the_503(down_client):
    paths = down_client.get("/openapi.json").json()["paths"]
    assert "503" in paths["/api/v1/unsubscribes"]["post"]["responses"]
    assert "text/html" in paths["/u/{token}"]["post"]["responses"]["503"]["content"]


def test_a_group_commit_gives_up_at_once_when_the_database_is_down(db, clock, monkeypatch):
    """One failed batch and one failed retry alone: the rest are not tried one by one
    (each would wait out its own connect timeout)."""
    calls = []

    def down(session, requests, *, now):
        calls.append(len(requests))
        raise OperationalError("UPDATE persons ...", {}, ConnectionRefusedError("refused"))

    monkeypatch.setattr(batching, "unsubscribe_ids", down)
    group = GroupCommit(db, clock)

    async def submit_all() -> list[object]:
        requests = [ByIdRequest(n, Source.ONE_CLICK, "t") for n in range(10)]
        return await asyncio.gather(*(group.submit(r) for r in requests), return_exceptions=True)

    outcomes = run_async(submit_all())
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert calls == [10, 1]
