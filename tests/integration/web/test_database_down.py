"""While the database cannot be reached every route answers 503 with Retry-After (HTML
for pages, the JSON error shape for the API), nothing claims success, and the log names
the failure without the statement's parameters."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from optsync.bootstrap import Context
from optsync.domain.optout import Source
from optsync.services.bulk_unsubscribes import ByIdRequest
from optsync.services.links import UnsubscribeLinks
from optsync.services.optouts import get_or_create_person
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


def test_a_stuck_row_lock_fails_the_batch_in_time_instead_of_hanging(pg_db, clock):
    """PostgreSQL: a batch waits at most its statement timeout behind a lock another
    transaction holds; its requests then fail (503), and succeed once the lock is gone."""
    with pg_db.transaction() as s:
        pid = get_or_create_person(s, "locked@example.com", clock())[0].id
    group = GroupCommit(pg_db, clock, timeout_s=0.5)
    request = ByIdRequest(pid, Source.ONE_CLICK, "t")
    with pg_db.engine.connect() as blocker:
        blocker.execute(text("SELECT id FROM persons WHERE id = :id FOR UPDATE"), {"id": pid})
        started = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"):
            run_async(group.submit(request))
        assert time.monotonic() - started < 5
        blocker.rollback()
    assert run_async(group.submit(request)).changed


def test_database_errors_do_not_show_statement_parameters(db, clock):
    with db.transaction() as s:
        get_or_create_person(s, "secret-address@example.com", clock())
    with pytest.raises(IntegrityError) as caught, db.transaction() as s:
        s.execute(
            text(
                "INSERT INTO persons (email, unsubscribed, created_at, updated_at) "
                "VALUES (:email, false, :now, :now)"
            ),
            {"email": "secret-address@example.com", "now": clock()},
        )
    message = str(caught.value)
    # the bound values are not echoed (PostgreSQL's own DETAIL line may still name the key)
    assert "[SQL parameters hidden due to hide_parameters=True]" in message
    assert "'email': 'secret-address" not in message


def test_the_503_page_speaks_the_recipients_language(down_client):
    token = UnsubscribeLinks("test", BASE_URL).token(42)
    page = down_client.get(f"/u/{token}", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert page.status_code == 503 and page.headers["retry-after"] == "30"
    assert '<html lang="fr">' in page.text
    assert "Nous n\u2019avons pas pu enregistrer votre demande" in page.text
