"""Serving: the CLI command, persistence across restarts, TLS certificate names."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from optsync.emulator import Emulator, EmulatorOptions, run_emulator
from optsync.errors import UsageError

from .helpers import Raw

pytestmark = pytest.mark.emulator

_LAUNCH = "import typer; from optsync.cli.emulator import emulator; typer.run(emulator)"


def _as_from_a_terminal() -> None:
    """Ctrl-C reaches the command as it does from a terminal: a shell that runs this
    suite as a background job (``bash .ci/run &``) starts it with SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler, so the SIGINT below would be
    lost and the emulator left running."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_json_line_then_clean_stop(tmp_path: Path) -> None:
    env = dict(os.environ, OPTSYNC_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _LAUNCH,
            "--port",
            "0",
            "--memory",
            "--json",
            "--seed",
            "10",
            "--without-sales-opt-out",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert {
            "instance_url",
            "login_url",
            "ca_bundle",
            "client_id",
            "client_secret",
            "username",
            "password",
            "private_key_file",
        } <= set(info)
        assert info["ca_bundle"] == str(tmp_path / "emulator" / "ca.pem")
        import requests

        with requests.Session() as s:
            s.trust_env = False
            s.verify = info["ca_bundle"]
            tok = s.post(
                f"{info['login_url']}/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(info["client_id"], info["client_secret"]),
                timeout=30,
            ).json()
            resp = s.get(
                f"{info['instance_url']}/services/data/v59.0/query",
                params={"q": "SELECT COUNT() FROM Lead"},
                headers={"Authorization": f"Bearer {tok['access_token']}"},
                timeout=30,
            )
            assert resp.json()["totalSize"] == 5
            fields = s.get(
                f"{info['instance_url']}/services/data/v59.0/sobjects/Lead/describe",
                headers={"Authorization": f"Bearer {tok['access_token']}"},
                timeout=30,
            ).json()["fields"]
            assert "Sales_Opt_Out__c" not in {f["name"] for f in fields}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


def test_cli_rejects_bad_fault_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optsync.cli.emulator import emulator

    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        emulator(fault_rate=1.5)
    assert exc.value.field == "--fault-rate"
    assert exc.value.fix


def test_org_and_credentials_persist_across_restarts(tmp_path: Path) -> None:
    options = EmulatorOptions(data_dir=tmp_path, port=0, memory=False)
    with run_emulator(options) as first:
        cid = first.seed(contacts=1)["contact_ids"][0]
        first.salesforce().Contact.update(cid, {"HasOptedOutOfEmail": True})
        first.control("PUT", "fields/Lead/Email", {"visible": False, "updateable": False})
        creds = (first.client_id, first.client_secret, first.password, first.ca_bundle)
    assert (tmp_path / "emulator" / "org.sqlite3").exists()
    with run_emulator(options) as second:
        assert (second.client_id, second.client_secret, second.password, second.ca_bundle) == creds
        sf = second.salesforce()
        assert sf.Contact.get(cid)["HasOptedOutOfEmail"] is True
        assert "Email" not in {f["name"] for f in sf.Lead.describe()["fields"]}
        second.reset()
        assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_certificate_names_and_ca(emu: Emulator) -> None:
    cert = x509.load_pem_x509_certificate((Path(emu.ca_bundle).parent / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ctx = ssl.create_default_context(cafile=emu.ca_bundle)
    assert ctx.get_ca_certs()


def test_unknown_paths_answer_salesforce_style(emu: Emulator) -> None:
    raw = Raw(emu)
    resp = raw.get("/services/data/v59.0/sobjects/Contact/describe/nope/more")
    assert resp.status_code == 404
    assert resp.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    assert resp.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert raw.put("limits").status_code == 405
