"""Metrics that tell the truth across processes, for real:

* ``optsync serve --workers 2``: both web processes count unsubscribes, and every scrape,
  whichever process answers it, reads the same total (prometheus-client multiprocess
  mode, one directory per serving command).
* ``optsync worker --metrics-port``: the worker's pushes are visible on its own /metrics.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from optsync.services.accounts import create_token
from optsync.services.links import UnsubscribeLinks
from optsync.services.optouts import get_or_create_person
from tests.integration.push.conftest import link_and_unsubscribe
from tests.integration.push.test_workers import counts, wait_for, worker_env
from tests.integration.web.conftest import run_async
from tests.integration.web.test_serve_and_logs import free_port


def sample(text: str, name: str) -> float:
    found = re.findall(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert len(found) == 1, (name, text)
    return float(found[0])


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_serve_with_two_workers_reads_one_total_on_every_scrape(pg_db, tmp_path):
    db = pg_db
    now = datetime.now(UTC)
    with db.transaction() as s:
        ids = [get_or_create_person(s, f"m{i}@example.com", now)[0].id for i in range(80)]
        token = create_token(s, "scraper", is_admin=False, now=now)
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTSYNC_", "PROMETHEUS"))}
    env.update(
        OPTSYNC_DATA_DIR=str(data_dir),
        OPTSYNC_DATABASE_URL=db.url,
        OPTSYNC_SECRET_KEY="metrics-web",
        OPTSYNC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optsync.cli.main",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    links = UnsubscribeLinks("metrics-web", base)
    try:
        wait_ready(base, proc, log)

        async def post_all() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                replies = await asyncio.gather(
                    *(
                        client.post(
                            f"/u/{links.token(pid)}", data={"List-Unsubscribe": "One-Click"}
                        )
                        for pid in ids
                    )
                )
            return [r.status_code for r in replies]

        assert run_async(post_all()) == [200] * 80
        # both processes counted some of them (else this test would prove nothing)
        metric_dirs = list((data_dir / "metrics").glob("serve-*"))
        assert len(metric_dirs) == 1, metric_dirs
        writers = {p.name for p in metric_dirs[0].glob("counter_*.db")}
        assert len(writers) >= 2, writers
        totals = set()
        for _ in range(12):  # a new connection each time: scrapes land on both processes
            r = httpx.get(
                f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert r.status_code == 200, r.text
            totals.add(sample(r.text, 'optsync_unsubscribes_recorded_total{source="one_click"}'))
            assert sample(r.text, 'optsync_outbox_depth{state="pending"}') == 80
        assert totals == {80.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert not (data_dir / "metrics" / metric_dirs[0].name).exists()  # removed at exit


def test_worker_pushes_are_visible_on_its_metrics_port(emu, db, database_url, clock, tmp_path):
    from optsync.clock import utcnow

    clock.now = utcnow()
    ids = emu.seed(contacts=3)["contact_ids"]
    link_and_unsubscribe(db, clock, ids)
    with db.transaction() as s:
        token = create_token(s, "scraper", is_admin=False, now=clock())
    port = free_port()
    env = worker_env(emu, database_url, tmp_path / "data")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optsync.cli.main",
                "worker",
                "--no-schedule",
                "--metrics-port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        wait_for(lambda: counts(db) == {"sent": 3})
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401  # token required
        r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert sample(r.text, "optsync_pushes_sent_total") == 3
        assert sample(r.text, 'optsync_outbox_depth{state="sent"}') == 3
        assert sample(r.text, 'optsync_outbox_depth{state="pending"}') == 0
    finally:
        proc.terminate()
        proc.wait(30)
