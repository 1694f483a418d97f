"""Worker processes: SIGKILL mid-batch loses nothing; two workers never double-claim."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from optsync.store.db import Database
from optsync.store.models import OutboxPush
from tests.fixtures_emulator import settings_env
from tests.integration.push.conftest import link_and_unsubscribe, record


def worker_env(emu, database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env.update(
        {
            "OPTSYNC_DATABASE_URL": database_url,
            "OPTSYNC_DATA_DIR": str(data_dir),
            **settings_env(emu),
        }
    )
    return env


def start_worker(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "optsync.cli.main", "worker", "--no-schedule", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def counts(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return dict(
            s.execute(select(OutboxPush.state, func.count()).group_by(OutboxPush.state)).all()
        )  # type: ignore[arg-type]


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_worker_killed_mid_batch_loses_nothing(emu, db, database_url, clock, tmp_path):
    from optsync.clock import utcnow

    clock.now = utcnow()  # the worker processes use the real clock
    ids = emu.seed(contacts=600, leads=400)
    all_ids = ids["contact_ids"] + ids["lead_ids"]
    link_and_unsubscribe(db, clock, all_ids)
    emu.settings(latency_ms=400)
    env = worker_env(emu, database_url, tmp_path / "data")
    # one loop, so that its second claim is in flight while the first one is already sent
    first = start_worker(env, "--lease-seconds", "2", "--push-loops", "1")
    try:
        wait_for(lambda: counts(db).get("in_flight", 0) > 0 and counts(db).get("sent", 0) > 0)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed = counts(db)
    assert killed.get("sent", 0) < 1000  # it really died mid-way
    emu.settings(latency_ms=0)
    second = start_worker(env, "--lease-seconds", "2")
    try:
        wait_for(lambda: counts(db) == {"sent": 1000})
    finally:
        second.terminate()
        second.wait(10)
    assert all(record(emu, i)["HasOptedOutOfEmail"] for i in all_ids[::97])


@pytest.mark.postgres
def test_two_workers_never_double_claim(emu, pg_db, postgres_url, clock, tmp_path):
    from optsync.clock import utcnow

    db, database_url = pg_db, postgres_url
    clock.now = utcnow()
    ids = emu.seed(contacts=1200, leads=800)
    link_and_unsubscribe(db, clock, ids["contact_ids"] + ids["lead_ids"])
    emu.settings(latency_ms=50)
    env = worker_env(emu, database_url, tmp_path / "data")
    before = emu.control("GET", "counters")["by_endpoint"].get("composite/sobjects", 0)
    workers = [start_worker(env), start_worker(env)]
    try:
        wait_for(lambda: counts(db) == {"sent": 2000})
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(10)
    after = emu.control("GET", "counters")["by_endpoint"].get("composite/sobjects", 0)
    # 2,000 pushes in claims of 200: exactly 10 composite calls unless a row was claimed twice
    assert after - before == 10
