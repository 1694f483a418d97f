"""``optsync serve`` wiring and the access-log redaction."""

from __future__ import annotations

import logging

import typer
from typer.testing import CliRunner

from optsync.cli import web
from optsync.web.access_log import RedactingFilter, redact_path


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
