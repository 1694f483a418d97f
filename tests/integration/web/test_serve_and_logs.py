"""``optsync serve`` wiring and the access-log redaction."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import distinct, func, select
from typer.testing import CliRunner

from optsync.cli import web
from optsync.services.links import UnsubscribeLinks
from optsync.services.optouts import get_or_create_person
from optsync.store.models import LedgerEntry
from optsync.web import asgi
from optsync.web.access_log import RedactingFilter, redact_path
from tests.integration.web.conftest import counts, run_async


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_access_log_hides_tokens_and_query_strings():
    assert redact_path("/u/MQ.abcdef") == "/u/***"
    assert redact_path("/u/MQ.abcdef?x=1") == "/u/***"
    assert redact_path("/api/v1/persons?email=ann@example.com") == "/api/v1/persons"
    assert redact_path("/healthz") == "/healthz"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "POST", "/u/MQ.secret", "1.1", 200),
        None,
    )
    RedactingFilter().filter(record)
    assert "secret" not in record.getMessage() and "/u/***" in record.getMessage()


def test_serve_runs_uvicorn_on_the_app(cli_env, monkeypatch):
    seen = {}
    monkeypatch.setattr(asgi, "tune_for_serving", lambda: seen.setdefault("tuned", True))

    def fake_run(app, **kwargs):
        seen["routes"] = set(app.openapi()["paths"])
        seen.update(kwargs)

    monkeypatch.setattr(web.uvicorn, "run", fake_run)
    app = typer.Typer()
    app.command()(web.serve)
    r = CliRunner().invoke(app, ["--host", "0.0.0.0", "--port", "9001"])
    assert r.exit_code == 0, r.output
    assert seen["host"] == "0.0.0.0" and seen["port"] == 9001
    assert {"/u/{token}", "/api/v1/suppression/check", "/healthz"} <= seen["routes"]
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("uvicorn.access").filters)
    assert seen["tuned"]


def test_serve_with_workers_hands_uvicorn_the_app_factory(cli_env, monkeypatch):
    seen = {}
    monkeypatch.setattr(web.uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    app = typer.Typer()
    app.command()(web.serve)
    r = CliRunner().invoke(app, ["--workers", "3", "--port", "9002"])
    assert r.exit_code == 0, r.output
    assert seen["app"] == "optsync.web.asgi:create" and seen["factory"] is True
    assert seen["workers"] == 3 and seen["port"] == 9002 and seen["proxy_headers"] is True


def test_serve_refuses_bad_settings_before_starting_workers(cli_env, monkeypatch, tmp_path):
    monkeypatch.setenv("OPTSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'never-migrated.db'}")
    monkeypatch.setattr(web.uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    app = typer.Typer()
    app.command()(web.serve)
    r = CliRunner().invoke(app, ["--workers", "2"])
    assert r.exit_code != 0


def test_the_worker_factory_builds_the_app_from_the_environment(cli_env, monkeypatch):
    monkeypatch.setattr(asgi, "tune_for_serving", lambda: None)
    app = asgi.create()
    assert "/u/{token}" in app.openapi()["paths"]
    with TestClient(app) as client:  # runs the lifespan, which closes the pool at the end
        assert client.get("/readyz").status_code == 200


def test_two_web_processes_share_a_port_and_lose_nothing(pg_db, tmp_path):
    """``optsync serve --workers 2`` on PostgreSQL, for real: two uvicorn worker
    processes, concurrent one-click POSTs spread over them, each recorded exactly once."""
    db, postgres_url = pg_db, pg_db.url
    now = datetime.now(UTC)
    with db.transaction() as s:
        ids = [get_or_create_person(s, f"w{i}@example.com", now)[0].id for i in range(120)]
    port = free_port()
    env = {
        **os.environ,
        "OPTSYNC_DATA_DIR": str(tmp_path / "data"),
        "OPTSYNC_DATABASE_URL": postgres_url,
        "OPTSYNC_SECRET_KEY": "two-web",
        "OPTSYNC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "optsync.cli.main", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    links = UnsubscribeLinks("two-web", f"http://127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2, children  # the two workers (and uvicorn's helpers)

        async def post_all() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                body = {"List-Unsubscribe": "One-Click"}
                replies = await asyncio.gather(
                    *(client.post(f"/u/{links.token(pid)}", data=body) for pid in ids * 2)
                )
            return [r.status_code for r in replies]

        assert run_async(post_all()) == [200] * 240  # every person twice, concurrently
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert counts(db) == (120, 120, 120, 120)
    with db.transaction() as s:
        assert s.scalar(select(func.count(distinct(LedgerEntry.person_id)))) == 120
