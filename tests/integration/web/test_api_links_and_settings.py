"""``/api/v1/links``, ``optsync link`` and ``/api/v1/settings/unsubscribe-sync``."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from optsync.cli.links import link
from optsync.services.links import UnsubscribeLinks
from optsync.settings import load_settings
from tests.integration.web.conftest import BASE_URL, assert_error, counts


def test_links_api_creates_the_person_and_returns_rfc_headers(client, ctx, links, member_headers):
    r = client.post("/api/v1/links", json={"email": "New@Example.com"}, headers=member_headers)
    assert r.status_code == 200
    out = r.json()
    assert out["url"].startswith(f"{BASE_URL}/u/")
    assert out["headers"] == {
        "List-Unsubscribe": f"<{out['url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    token = out["url"].rsplit("/", 1)[1]
    assert links.person_id(token) >= 1 and "new" not in token.lower()
    assert counts(ctx.db) == (1, 0, 0, 0)
    again = client.post("/api/v1/links", json={"email": "new@example.com"}, headers=member_headers)
    assert again.json() == out and counts(ctx.db) == (1, 0, 0, 0)
    r = client.post("/api/v1/links", json={"email": "bad"}, headers=member_headers)
    assert_error(r, 422, "validation_error", "email")


def test_cli_link_prints_url_and_headers(cli_env, monkeypatch):
    monkeypatch.setenv("OPTSYNC_BASE_URL", "https://mail.example.org/")
    app = typer.Typer()
    app.command()(link)
    runner = CliRunner()
    r = runner.invoke(app, ["bob@example.com"])
    assert r.exit_code == 0, r.output
    # stdout is the URL and the headers; the note that a person was added goes to stderr
    url, list_unsub, post = r.stdout.strip().splitlines()
    assert "Added bob@example.com as a new person" in r.stderr
    assert "not linked" not in r.stderr  # issue 16's word: Not in Salesforce
    assert url.startswith("https://mail.example.org/u/")
    assert list_unsub == f"List-Unsubscribe: <{url}>"
    assert post == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    r = runner.invoke(app, ["bob@example.com", "--json"])
    data = json.loads(r.stdout)
    assert data["url"] == url and data["headers"]["List-Unsubscribe"] == f"<{url}>"
    settings = load_settings()
    links = UnsubscribeLinks.from_settings(settings)
    assert links.person_id(url.rsplit("/", 1)[1]) == 1
    r = runner.invoke(app, ["not-an-address"])
    assert r.exit_code != 0


def test_settings_read_and_change(client, admin_headers, member_headers):
    r = client.get("/api/v1/settings/unsubscribe-sync", headers=member_headers)
    assert r.json() == {
        "sync_enabled": False,
        "field": "email_opt_out",
        "sales_opt_out_field": "Sales_Opt_Out__c",
        "schedule": "0 20 * * *",
        "timezone": "America/Los_Angeles",
        "live_pull": "auto",
        "poll_interval_s": 60,
        "link_rule": "contact_then_lead",
        "suppress_unknown": True,
        "salesforce_field": "HasOptedOutOfEmail",
        "push_field": "HasOptedOutOfEmail",
    }
    r = client.put(
        "/api/v1/settings/unsubscribe-sync",
        json={"sync_enabled": True, "field": "sales_opt_out", "timezone": "Europe/Paris"},
        headers=admin_headers,
    )
    assert r.status_code == 200
    assert r.json()["push_field"] == "Sales_Opt_Out__c" and r.json()["timezone"] == "Europe/Paris"
    assert r.json()["schedule"] == "0 20 * * *"
    got = client.get("/api/v1/settings/unsubscribe-sync", headers=member_headers).json()
    assert got == r.json()


def test_settings_validation_names_the_field(client, admin_headers):
    cases = [
        ({"schedule": "every night"}, "schedule"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"field": "other"}, "field"),
        ({"sales_opt_out_field": "NoSuffix"}, "sales_opt_out_field"),
        ({"sync_enabled": "yes"}, "sync_enabled"),
        ({"unknown": 1}, "unknown"),
    ]
    for body, field in cases:
        r = client.put("/api/v1/settings/unsubscribe-sync", json=body, headers=admin_headers)
        assert_error(r, 422, "validation_error", field)
