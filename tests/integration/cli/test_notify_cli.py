"""``optsync notify show|set|test`` on each database, against a real SMTP server and a
real webhook receiver on loopback."""

from __future__ import annotations

import json

from sqlalchemy import select

from optsync.store.db import Database
from optsync.store.models import AdminAuditEntry
from tests.integration.cli.test_cli import optsync
from tests.integration.health.servers import SmtpServer, WebhookServer, free_port


def test_show_set_and_test_by_email(cli_env, capsys, monkeypatch):
    code, out, _ = optsync(capsys, "notify", "show", "--json")
    assert code == 0 and json.loads(out)["email_enabled"] is False
    with SmtpServer(users={"ops": "pa55word"}) as smtp:
        code, out, err = optsync(
            capsys,
            "notify", "set",
            "--email", "true",
            "--smtp-host", "127.0.0.1",
            "--smtp-port", str(smtp.port),
            "--smtp-security", "none",
            "--smtp-username", "ops",
            "--smtp-password-stdin",
            "--from", "optsync@example.com",
            "--to", "ops@example.com",
            "--json",
            stdin="pa55word\n",
            monkeypatch=monkeypatch,
        )  # fmt: skip
        assert code == 0, err
        shown = json.loads(out)
        assert shown["smtp_password_stored"] is True and "pa55word" not in out
        code, out, err = optsync(capsys, "notify", "test", "--channel", "email")
        assert code == 0 and "email: test sent" in out, err
        assert smtp.box.messages[0]["To"] == "ops@example.com"
    code, out, err = optsync(capsys, "notify", "test", "--channel", "email")
    assert code == 1 and "email: cannot reach 127.0.0.1:" in err
    with Database(cli_env).transaction() as s:
        details = [a.detail or "" for a in s.scalars(select(AdminAuditEntry))]
    assert any("smtp_password" in d for d in details)
    assert not any("pa55word" in d for d in details)


def test_webhook_secret_is_printed_once_and_bad_input_is_one_line(cli_env, capsys):
    with WebhookServer() as hook:
        code, out, err = optsync(
            capsys, "notify", "set", "--webhook", "true", "--webhook-url", hook.url
        )
        assert code == 0, err
        secret = out.strip().splitlines()[-1]
        assert secret.startswith("whsec_") and "shown once" in err
        code, out, _ = optsync(capsys, "notify", "show")
        assert code == 0 and secret not in out and "stored" in out
        code, out, _ = optsync(capsys, "notify", "test", "--json")
        assert code == 0 and json.loads(out) == {"webhook": {"ok": True, "message": "sent"}}
        assert hook.hook.requests[0][0]["x-optsync-signature"].startswith("sha256=")
    code, _, err = optsync(
        capsys, "notify", "set", "--webhook-url", f"http://example.com:{free_port()}/x"
    )
    assert code == 1 and err.startswith("error: webhook_url: use https://")
    assert len(err.strip().splitlines()) == 1
