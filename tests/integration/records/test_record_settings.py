"""The linking rule and suppress-unknown settings: service, CLI, API and the Integrations
tab, strictly validated with errors naming the field."""

from __future__ import annotations

import json

import pytest

from optsync.errors import UsageError
from optsync.services.sync_settings import DEFAULTS, validate_changes
from tests.integration.cli.test_cli import optsync
from tests.integration.web.conftest import admin_headers, client  # noqa: F401 (fixtures)

URL = "/api/v1/settings/unsubscribe-sync"


def test_defaults_and_strict_validation():
    assert DEFAULTS.link_rule == "contact_then_lead" and DEFAULTS.suppress_unknown is True
    assert validate_changes(DEFAULTS, {"link_rule": "lead_only"}).link_rule == "lead_only"
    for bad in ("Contact_then_lead", "contact", "", 1):
        with pytest.raises(UsageError) as err:
            validate_changes(DEFAULTS, {"link_rule": bad})
        assert err.value.field == "link_rule" and "lead_then_contact" in err.value.message
    for bad in ("true", 1, 0, "yes"):
        with pytest.raises(UsageError) as err:
            validate_changes(DEFAULTS, {"suppress_unknown": bad})
        assert err.value.field == "suppress_unknown"


def test_cli_sets_and_shows_them(cli_env, capsys):
    code, out, _ = optsync(
        capsys,
        "settings",
        "set",
        "--link-rule",
        "lead_then_contact",
        "--suppress-unknown",
        "false",
        "--json",
    )
    assert code == 0, out
    got = json.loads(out)
    assert got["link_rule"] == "lead_then_contact" and got["suppress_unknown"] is False
    code, out, _ = optsync(capsys, "settings", "show")
    assert code == 0 and "link_rule" in out and "lead_then_contact" in out
    code, _, err = optsync(capsys, "settings", "set", "--link-rule", "sometimes")
    assert code != 0 and "link_rule" in err and "contact_only" in err
    code, _, err = optsync(capsys, "settings", "set", "--suppress-unknown", "maybe")
    assert code != 0 and "suppress-unknown" in err


def test_api_reads_and_changes_them_strictly(client, admin_headers):  # noqa: F811
    got = client.get(URL, headers=admin_headers).json()
    assert got["link_rule"] == "contact_then_lead" and got["suppress_unknown"] is True
    r = client.put(URL, json={"link_rule": "off", "suppress_unknown": False}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["link_rule"] == "off" and r.json()["suppress_unknown"] is False
    for bad, field in (
        ({"link_rule": "sometimes"}, "link_rule"),
        ({"suppress_unknown": "false"}, "suppress_unknown"),
        ({"suppress_unknown": 0}, "suppress_unknown"),
    ):
        r = client.put(URL, json=bad, headers=admin_headers)
        assert r.status_code == 422 and field in r.text, (bad, r.text)
