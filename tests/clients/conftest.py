"""Unmodified Salesforce clients from npm (the Salesforce CLI and jsforce) against a real
``optsync emulator`` process on a free port.

The clients are installed by ``npm ci`` in this folder (CI's ``.ci/run`` does it). Without
them the tests skip, unless ``OPTSYNC_REQUIRE_NODE_CLIENTS=1`` (set in CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).parent
BIN = HERE / "node_modules" / ".bin"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BIN / "sf").exists() or not (HERE / "node_modules" / "jsforce").exists():
        return f"the npm clients are not installed (run `npm ci` in {HERE})"
    return None


def require_clients() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("OPTSYNC_REQUIRE_NODE_CLIENTS") == "1":
        pytest.fail(f"OPTSYNC_REQUIRE_NODE_CLIENTS=1 but {reason}")
    pytest.skip(reason)


class EmulatorProcess:
    """``optsync emulator --port 0 --memory --json`` in a child process."""

    def __init__(self, data_dir: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env["OPTSYNC_DATA_DIR"] = str(data_dir)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from optsync.cli.main import run; run()",
                "emulator",
                "--port",
                "0",
                "--memory",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("the emulator exited before printing its connection facts")
        self.facts: dict[str, str] = json.loads(line)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = self.facts["ca_bundle"]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.http.request(
            method, f"{self.facts['control_url']}/{path}", json=body, timeout=60
        )
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def token(self) -> str:
        resp = self.http.post(
            f"{self.facts['login_url']}/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self.facts["client_id"], self.facts["client_secret"]),
            timeout=30,
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    require_clients()
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator-process"))
    try:
        yield emu
    finally:
        emu.stop()


def node_env(emu: EmulatorProcess, home: Path) -> dict[str, str]:
    """Environment for a node client: the emulator's CA, a private HOME, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SFDX_"))}
    env.update(
        {
            "HOME": str(home),
            "NODE_EXTRA_CA_CERTS": emu.facts["ca_bundle"],  # read by node at start-up
            "SF_DISABLE_TELEMETRY": "true",
            "SF_AUTOUPDATE_DISABLE": "true",
            "SF_HIDE_RELEASE_NOTES": "true",
            "SF_SKIP_NEW_VERSION_CHECK": "true",
            "SF_USE_GENERIC_UNIX_KEYCHAIN": "true",
            "NO_COLOR": "1",
        }
    )
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    return env
