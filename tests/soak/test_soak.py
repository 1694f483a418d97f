"""The soak: everything at once, with faults, then the promises checked against the ledger.

Continuous unsubscribes from several sources (RFC 8058 one-click POSTs to two web
processes, the REST API, the CLI, in-process service calls), Salesforce-side opt-outs,
Lead conversions and deletes in the emulator, while the emulator injects latency spikes,
503s and lock errors, sessions are expired, the daily API limit is exhausted once, and
worker processes are killed with SIGKILL and restarted at random. Sync runs are started
in pairs to race. At the end, with the faults off, the outbox drains and one more sync
runs, and the invariants are checked:

* every unsubscribed linked person is opted out in Salesforce, or its push failed
  permanently with a code and a fix (a deleted record);
* every Salesforce opt-out of a known, linked person is an unsubscribe here;
* nothing was re-subscribed by a sync; no person has two unsubscribe ledger entries;
* no record was written with the wrong field (Sales_Opt_Out__c is never set);
* the outbox holds nothing pending, and every failure is explained;
* sync runs never overlapped.

CI runs a short version (``OPTSYNC_SOAK_SECONDS``, default 40); ``make soak`` runs the
long one. Four workers and two web processes on PostgreSQL when
``OPTSYNC_TEST_POSTGRES_URL`` is set, else SQLite.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from optsync.bootstrap import Context
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.accounts import create_token
from optsync.services.links import UnsubscribeLinks
from optsync.services.persons_pull import pull_persons
from optsync.services.sync_settings import update_settings
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.store.models import LedgerEntry, OutboxPush, Person, SyncRun
from tests.fixtures_emulator import settings_env
from tests.integration.salesforce.conftest import config_for

pytestmark = [pytest.mark.soak, pytest.mark.slow]

DURATION = float(os.environ.get("OPTSYNC_SOAK_SECONDS", "40"))
ARTIFACTS = Path("test-artifacts")


def _commit() -> str:
    """The code the soak ran on (``git describe``), or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Worker and web subprocesses, killable and restartable."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.webs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.n = 0

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.n += 1
        log = (self.logs / f"proc-{self.n}.log").open("wb")
        return subprocess.Popen([sys.executable, "-m", "optsync.cli.main", *args],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start_worker(self) -> None:
        self.workers.append(self._spawn(
            "worker", "--no-schedule", "--lease-seconds", "3", "--poll-seconds", "0.5",
            "--daily-limit-pause-seconds", "3", "--max-backoff-seconds", "4"))

    def start_web(self, port: int) -> None:
        self.webs.append(self._spawn("serve", "--port", str(port)))

    def kill_random_worker(self, rng: random.Random) -> None:
        victim = rng.randrange(len(self.workers))
        self.workers[victim].send_signal(signal.SIGKILL)
        self.workers[victim].wait(10)
        self.kills += 1
        self.workers[victim] = self._spawn(
            "worker", "--no-schedule", "--lease-seconds", "3", "--poll-seconds", "0.5",
            "--daily-limit-pause-seconds", "3", "--max-backoff-seconds", "4")

    def stop(self) -> None:
        for p in self.workers + self.webs:
            if p.poll() is None:
                p.terminate()
        for p in self.workers + self.webs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optsync.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def soak_db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path):
    if os.environ.get("OPTSYNC_TEST_POSTGRES_URL"):
        database = request.getfixturevalue("pg_db")
        return database, database.url
    import shutil

    path = tmp_path / "soak.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    request.addfinalizer(database.dispose)
    return database, database.url


def test_soak(emu, soak_db, tmp_path):
    db, url = soak_db
    postgres = url.startswith("postgresql")
    rng = random.Random(int(os.environ.get("OPTSYNC_SOAK_SEED", "8058")))
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, database_url=url)
    ctx = Context(settings=settings, db=db)
    ARTIFACTS.mkdir(exist_ok=True)

    # -- an org and a store, linked -----------------------------------------------------
    ids = emu.seed(contacts=1500, leads=1000)
    contacts, leads = list(ids["contact_ids"]), list(ids["lead_ids"])
    with SalesforceGateway(config_for(emu)) as gw:
        pull_persons(db, gw, now=ctx.clock())
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True, "field": "email_opt_out"}, actor="soak",
                        now=ctx.clock())
        token = create_token(s, "soak", is_admin=True, now=ctx.clock())
        people = list(s.execute(select(Person.id, Person.email)))
    links = UnsubscribeLinks.from_settings(settings)

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env.update({
        "OPTSYNC_DATA_DIR": str(data_dir), "OPTSYNC_DATABASE_URL": url, **settings_env(emu),
    })
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs)
    ports = [free_port(), free_port()]
    for _ in range(4 if postgres else 2):
        procs.start_worker()
    for port in ports if postgres else ports[:1]:
        procs.start_web(port)
    web_urls = [f"http://127.0.0.1:{p}" for p in (ports if postgres else ports[:1])]
    client = httpx.Client(timeout=30)
    for base in web_urls:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "web process did not start"
            time.sleep(0.2)

    stats: Counter[str] = Counter()
    sync_results: list[int] = []
    sync_threads: list[threading.Thread] = []

    def sync_pair() -> None:
        def one() -> None:
            sync_results.append(run_cli(env, "sync", "run", "--json").returncode)
        pair = [threading.Thread(target=one) for _ in range(2)]
        for t in pair:
            t.start()
        sync_threads.extend(pair)

    try:
        started = time.monotonic()
        next_kill = started + 5
        next_expire = started + 3
        next_sync = started + 8
        next_faults = started
        limit_done = False
        unconverted = list(leads)
        live_contacts = list(contacts)
        while time.monotonic() - started < DURATION:
            elapsed = time.monotonic() - started
            pid, email = rng.choice(people)
            how = rng.random()
            if how < 0.45:  # RFC 8058 one-click from a mailbox provider
                r = client.post(links.for_person(pid).url.replace(settings.base_url,
                                                                   rng.choice(web_urls)),
                                data={"List-Unsubscribe": "One-Click"})
                assert r.status_code == 200, r.text
                stats["one_click"] += 1
            elif how < 0.8:  # the REST API
                r = client.post(f"{rng.choice(web_urls)}/api/v1/unsubscribes",
                                json={"email": email},
                                headers={"Authorization": f"Bearer {token}"})
                assert r.status_code in (200, 201), r.text
                stats["api"] += 1
            elif how < 0.82:  # the CLI
                assert run_cli(env, "unsubscribe", email).returncode == 0
                stats["cli"] += 1
            else:  # Salesforce users
                what = rng.random()
                if what < 0.7:  # a user ticks Email Opt Out on a live record
                    target = rng.choice(live_contacts + unconverted)
                    emu.control("PATCH", f"records/{target}", {"HasOptedOutOfEmail": True})
                    stats["salesforce_opt_out"] += 1
                elif what < 0.85 and unconverted:
                    lead = unconverted.pop(rng.randrange(len(unconverted)))
                    live_contacts.append(emu.control("POST", f"records/{lead}/convert")
                                         ["contact_id"])
                    stats["conversions"] += 1
                elif len(live_contacts) > 100:
                    victim = live_contacts.pop(rng.randrange(len(live_contacts)))
                    emu.control("DELETE", f"records/{victim}")
                    stats["deletes"] += 1
            now = time.monotonic()
            if now >= next_faults:  # latency spikes on top of a steady fault rate
                spike = rng.random() < 0.2
                emu.settings(fault_rate=0.15, latency_ms=300 if spike else 20, jitter_ms=30)
                stats["latency_spikes"] += spike
                next_faults = now + 0.5
            if now >= next_expire:
                emu.control("POST", "sessions/expire")
                stats["session_expiries"] += 1
                next_expire = now + rng.uniform(3, 8)
            if not limit_done and elapsed > DURATION / 2:
                used = emu.control("GET", "counters")["total"]
                emu.settings(daily_api_limit=used)
                time.sleep(2)
                emu.settings(daily_api_limit=10_000_000)
                stats["daily_limit_exhaustions"] += 1
                limit_done = True
            if now >= next_kill:
                procs.kill_random_worker(rng)
                next_kill = now + rng.uniform(4, 9)
            if now >= next_sync:
                sync_pair()
                next_sync = now + rng.uniform(8, 15)

        # -- calm down, drain, reconcile ---------------------------------------------------
        emu.settings(fault_rate=0.0, latency_ms=0, jitter_ms=0, daily_api_limit=10_000_000)
        for t in sync_threads:
            t.join(180)
        deadline = time.monotonic() + 180
        while True:
            with db.engine.connect() as c:
                open_ = c.execute(text("SELECT count(*) FROM outbox WHERE state IN "
                                       "('pending', 'in_flight')")).scalar_one()
            if open_ == 0:
                break
            if time.monotonic() > deadline:
                with db.engine.connect() as c:
                    stuck = c.execute(text(
                        "SELECT id, state, attempts, next_attempt_at, claimed_until, "
                        "last_error_code FROM outbox WHERE state IN ('pending', 'in_flight')"
                    )).all()
                raise AssertionError(f"pushes still open after the soak: {stuck[:5]}")
            time.sleep(0.5)
        final = run_cli(env, "sync", "run", "--json")
        assert final.returncode == 0, final.stdout + final.stderr
        final_report = json.loads(final.stdout)
        # pushes made by the final run reach Salesforce directly; let the workers settle
        time.sleep(1)
    finally:
        procs.stop()
        client.close()

    # -- invariants ------------------------------------------------------------------------
    checked: Counter[str] = Counter()
    sf = emu.salesforce()
    remote: dict[str, dict] = {}
    for obj in ("Contact", "Lead"):
        soql = f"SELECT Id, HasOptedOutOfEmail, Sales_Opt_Out__c, IsDeleted FROM {obj}"
        for rec in sf.query_all(soql, include_deleted=True)["records"]:
            remote[rec["Id"]] = rec
    with db.transaction() as s:
        persons = list(s.scalars(select(Person)))
        by_person = Counter(s.scalars(select(LedgerEntry.person_id)
                                      .where(LedgerEntry.kind == "unsubscribe")))
        sync_resubscribes = s.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.kind == "resubscribe", LedgerEntry.source == "salesforce"))
        open_pushes = s.scalar(select(func.count()).select_from(OutboxPush).where(
            OutboxPush.state.in_(("pending", "in_flight"))))
        failed = list(s.scalars(select(OutboxPush).where(OutboxPush.state == "failed")))
        runs = list(s.scalars(select(SyncRun).order_by(SyncRun.started_at)))
        all_pushes: dict[int, list[OutboxPush]] = {}
        for push in s.scalars(select(OutboxPush).order_by(OutboxPush.id)):
            all_pushes.setdefault(push.person_id, []).append(push)

    failed_explained = {p.person_id for p in failed if p.last_error_code and p.fix}
    run_failures = {f["person_id"] for f in final_report["failures"] if f.get("fix")}
    for person in persons:
        if person.unsubscribed and person.salesforce_id:
            rec = remote.get(person.salesforce_id)
            # a record deleted after the push keeps its field in the recycle bin; one
            # deleted before it is a permanent failure, explained with its fix
            ok = (rec is not None and rec["HasOptedOutOfEmail"]) or (
                person.id in failed_explained | run_failures)
            pushes = [(p.state, p.target_id, p.last_error_code)
                      for p in all_pushes.get(person.id, [])]
            assert ok, (
                f"person {person.id} unsubscribed but not opted out in Salesforce: "
                f"record {person.salesforce_id} = {rec}; pushes: {pushes}"
            )
            checked["unsubscribed_present_in_salesforce"] += 1
        if person.salesforce_id:
            rec = remote.get(person.salesforce_id)
            if rec and rec["HasOptedOutOfEmail"] and not rec["IsDeleted"]:
                assert person.unsubscribed, f"person {person.id}: Salesforce opt-out not pulled"
                checked["salesforce_opt_out_present_here"] += 1
    assert all(n <= 1 for n in by_person.values()), "a person has two unsubscribe entries"
    checked["ledger_no_duplicates"] = len(by_person)
    assert sync_resubscribes == 0
    checked["no_resubscribe_by_sync"] = 1
    assert not any(r["Sales_Opt_Out__c"] for r in remote.values()), "wrong field written"
    checked["no_wrong_field"] = len(remote)
    assert open_pushes == 0
    assert all(p.last_error_code and p.fix for p in failed)
    checked["failures_explained"] = len(failed)
    for a, b in itertools.pairwise(runs):
        assert a.finished_at is not None and a.finished_at <= b.started_at, "runs overlapped"
    checked["runs_never_overlapped"] = len(runs)
    assert final_report["status"] == "succeeded"

    summary = {
        "commit": _commit(),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": "postgresql" if postgres else "sqlite",
        "duration_s": DURATION,
        "workers": len(procs.workers), "web_processes": len(web_urls),
        "unsubscribes_requested": stats["one_click"] + stats["api"] + stats["cli"],
        "by_source": {k: stats[k] for k in ("one_click", "api", "cli")},
        "salesforce_side": {k: stats[k] for k in ("salesforce_opt_out", "conversions",
                                                  "deletes")},
        "faults": {"fault_rate": 0.15, "latency_spikes": stats["latency_spikes"],
                   "session_expiries": stats["session_expiries"],
                   "daily_limit_exhaustions": stats["daily_limit_exhaustions"],
                   "worker_kills": procs.kills},
        "sync_runs": len(runs), "sync_run_exit_codes": dict(Counter(sync_results)),
        "persons_unsubscribed": sum(p.unsubscribed for p in persons),
        "permanent_failures": len(failed),
        "invariants_checked": dict(checked),
        "final_run": {k: final_report[k] for k in ("pulled", "pushed", "failed")},
    }
    (ARTIFACTS / f"soak-summary-{summary['database']}.json").write_text(
        json.dumps(summary, indent=2))
    print(json.dumps(summary))
