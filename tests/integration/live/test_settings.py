"""The live-pull mode and poll interval in the CLI and the API, strictly validated."""

from __future__ import annotations

import json

from tests.integration.cli.test_cli import optsync
from tests.integration.web.conftest import admin_headers, client  # noqa: F401 (fixtures)


def test_cli_sets_the_live_pull_mode(cli_env, capsys):
    code, out, _ = optsync(
        capsys, "settings", "set", "--live-pull", "poll", "--poll-interval", "30", "--json"
    )
    assert code == 0
    assert json.loads(out)["live_pull"] == "poll" and json.loads(out)["poll_interval_s"] == 30
    code, _, err = optsync(capsys, "settings", "set", "--live-pull", "sometimes")
    assert code != 0 and "live_pull" in err and "auto" in err
    code, _, err = optsync(capsys, "settings", "set", "--poll-interval", "5")
    assert code != 0 and "poll_interval_s" in err


def test_api_takes_the_mode_with_strict_types(client, admin_headers):  # noqa: F811
    url = "/api/v1/settings/unsubscribe-sync"
    r = client.put(url, json={"live_pull": "cdc", "poll_interval_s": 120}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["live_pull"] == "cdc"
    for bad in ({"live_pull": "sometimes"}, {"poll_interval_s": "60"}, {"poll_interval_s": 5}):
        assert client.put(url, json=bad, headers=admin_headers).status_code == 422
