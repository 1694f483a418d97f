"""jsforce (npm, unmodified) against the emulator: every login flow, identity, CRUD, query
paging, sObject Collections, Bulk 2.0 ingest and query (``jsforce_suite.mjs``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import HERE, EmulatorProcess, node_env

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
CHECKS = [
    "login-password",
    "login-refresh-token",
    "login-jwt",
    "login-client-credentials",
    "identity",
    "crud",
    "query-paging",
    "collections",
    "bulk2-ingest",
    "bulk2-query",
]


def test_jsforce_suite(emulator_process: EmulatorProcess, tmp_path: Path) -> None:
    emulator_process.control("POST", "reset")
    proc = subprocess.run(
        ["node", str(HERE / "jsforce_suite.mjs")],
        input=json.dumps(emulator_process.facts),
        capture_output=True,
        text=True,
        env=node_env(emulator_process, tmp_path),
        cwd=HERE,
        timeout=300,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [r for r in results if not r["ok"]]
    assert failed == [], failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["check"] for r in results] == CHECKS
