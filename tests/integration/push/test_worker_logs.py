"""A real worker process logs each push's ids as fields, in logfmt and JSON, and never an
email address (every person here has one in the database)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.integration.push.conftest import link_and_unsubscribe
from tests.integration.push.test_workers import counts, wait_for, worker_env


def parse(line: str, log_format: str) -> dict[str, str]:
    if log_format == "json":
        return {k: str(v) for k, v in json.loads(line).items()}
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line)
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_worker_logs_push_ids_as_fields(emu, db, database_url, clock, tmp_path, log_format):
    from optsync.clock import utcnow

    clock.now = utcnow()  # the worker process uses the real clock
    ids = emu.seed(contacts=2)["contact_ids"]
    emu.control("DELETE", f"records/{ids[1]}")  # its push fails: ENTITY_IS_DELETED
    person_ids = link_and_unsubscribe(db, clock, ids)
    env = worker_env(emu, database_url, tmp_path / "data")
    stderr = tmp_path / "worker.log"
    with stderr.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optsync.cli.main",
                "--log-format",
                log_format,
                "worker",
                "--no-schedule",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            wait_for(lambda: proc.poll() is not None or counts(db) == {"sent": 1, "failed": 1})
        finally:
            proc.terminate()
            proc.wait(30)
    text = stderr.read_text()
    assert counts(db) == {"sent": 1, "failed": 1}, text
    lines = [parse(line, log_format) for line in text.splitlines() if "level" in line]
    assert lines, text
    failed = [r for r in lines if r.get("code") == "ENTITY_IS_DELETED"]
    assert failed, text
    assert failed[0]["person_id"] == str(person_ids[1]) and failed[0]["outbox_id"].isdigit()
    assert failed[0]["level"] == "warning" and failed[0]["salesforce_id"] == ids[1]
    batch = [r for r in lines if r.get("msg") == "pushed a batch to Salesforce"]
    assert batch and {"claimed", "sent", "worker"} <= batch[0].keys(), text
    assert "@example.com" not in text  # no address, at any level
