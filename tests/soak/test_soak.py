"""The soak: everything at once, with faults, and the promises checked as it goes.

Traffic: continuous unsubscribes from several sources (RFC 8058 one-click POSTs to two
web processes, the REST API, the CLI), Salesforce-side opt-outs, Lead conversions and
deletes in the emulator, while the emulator injects latency spikes, 503s and lock errors,
sessions are expired, the daily API limit is exhausted once a cycle, and worker processes
are killed with SIGKILL and restarted at random. Sync runs are started in pairs to race.

Scenarios, on persons set aside for them (no other traffic touches them or their
records): re-subscribes with Salesforce cleared first, re-subscribes leaving it set,
re-subscribes racing their own push, re-subscribes of a not-linked address, and relinks
to another record (also of persons whose push failed on a deleted record). Once a cycle
(every ~5 minutes, once in the short soak) the synced field is switched to Sales Opt Out
and back, and the opt-out field is made read-only on Contacts until pushes fail with a
fix, then restored and the failures retried with ``optsync push retry``.

The invariants (see ``checks.py``) are checked on a consistent snapshot before every
sync pair starts (so no run can have repaired a lost push since the previous
checkpoint), then once the workers drain and *before* the final sync, then after it:

1. every unsubscribed person with a Salesforce id has the field of its last push set on
   that record (or the one it became), or that push failed with a code and a fix;
2. a re-subscribe leaves no open push; one with Salesforce cleared first stays
   subscribed with the field unset; one without is opted out again by a sync and listed
   in its ``reopted_out``; nothing else unsubscribes them again;
3. ``persons.unsubscribed`` equals "last ledger entry is an unsubscribe", and no two
   consecutive entries of a person have the same kind;
4. at most one open push per person;
5. sync runs never overlap, and every racing start succeeded, failed with a reason, or was
   refused as already in progress;
6. pushes that failed on the read-only field end ``sent`` after the fix and the retry;
7. a relinked unsubscribed person's new record gets the field;
8. pushes and runs write the field in force at the time, and each switch took effect;
9. every Email Opt Out a Salesforce user ticked on a record linked to a known person is
   applied here before the final sync (checked at the drain, waiting up to
   ``LIVE_WAIT_S`` for a poll catch-up after the last fault): the live pull runs in the
   workers (mode ``auto``, ``OPTSYNC_SOAK_LIVE_PULL=cdc|poll|off`` to choose; ``off``
   must fail it) against the emulator's Pub/Sub API, while the soak injects gap and
   overflow events and drops and stalls the streams; a last round of ticks comes while
   the workers drain, after the last sync pair;
plus, after the final sync: every Salesforce opt-out of a linked person is an
unsubscribe here, and no sync re-subscribed anyone.

``OPTSYNC_SOAK_FAULT=drop-one-batch[:SECONDS]`` starts the workers with a fault that
loses one push batch (``faults.py``; test-only): the soak must then fail on invariant 1.

CI runs a short version (``OPTSYNC_SOAK_SECONDS``, default 40); ``make soak`` runs the
long one. Four workers and two web processes on PostgreSQL when
``OPTSYNC_TEST_POSTGRES_URL`` is set, else two workers and one web process on SQLite.
"""

from __future__ import annotations

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from optsync.bootstrap import Context
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.accounts import create_token
from optsync.services.links import UnsubscribeLinks
from optsync.services.persons_pull import pull_persons
from optsync.services.sync_settings import update_settings
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.store.models import Person
from tests.fixtures_emulator import settings_env
from tests.integration.salesforce.conftest import config_for
from tests.soak import checks
from tests.soak.checks import (
    EMAIL,
    OPEN,
    SALES,
    SF_FIELD,
    FieldTimeline,
    Snapshot,
    raise_if,
    sync_outcome,
)
from tests.soak.faults import parse, worker_command

pytestmark = [pytest.mark.soak, pytest.mark.slow]

DURATION = float(os.environ.get("OPTSYNC_SOAK_SECONDS", "40"))
FAULT = os.environ.get("OPTSYNC_SOAK_FAULT", "")
ARTIFACTS = Path("test-artifacts")
CYCLE_S = 300  # field switch, read-only window, retry and daily limit once per cycle
LEASE_S, POLL_S = 3, 0.5
# A push claimed (its field read) just before a switch or a fix may settle a little later:
# its cycle, or the lease expiring and another worker taking it over.
GRACE = timedelta(seconds=2 * LEASE_S + 4 * POLL_S + 2)
READ_ONLY_CODE = "INVALID_FIELD_FOR_INSERT_UPDATE"
LIVE = os.environ.get("OPTSYNC_SOAK_LIVE_PULL", "auto")  # read by this test only
POLL_INTERVAL_S = 15  # the shortest the setting allows: a catch-up covers its minute sooner
CDC_FAULT_EVERY_S = 5 if DURATION < 600 else 30
# A stall in the short soak is ended by a drop; the long one leaves it to the 300 s watchdog.
STALL_S = 5 if DURATION < 600 else 310
# Invariant 9 waits this long at the drain: a lease take-over (15 s), reconnect backoff,
# and a catch-up that polls every POLL_INTERVAL_S until it has covered its own minute.
LIVE_WAIT_S = 120 if DURATION < 600 else 420
LIVE_SETTLE = timedelta(seconds=15)  # a tick this close before a field switch is not counted
DRAIN_TICKS = 10
WORKER_ARGS = (
    "worker",
    "--no-schedule",
    "--lease-seconds",
    str(LEASE_S),
    "--poll-seconds",
    str(POLL_S),
    "--daily-limit-pause-seconds",
    "3",
    "--max-backoff-seconds",
    "4",
)


def _commit() -> str:
    """The code the soak ran on (``git describe``), or ``unknown`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_utc() -> datetime:
    return datetime.now(UTC)


class Processes:
    """Worker and web subprocesses, killable and restartable."""

    def __init__(self, env: dict[str, str], logs: Path, worker_cmd: list[str]) -> None:
        self.env = env
        self.logs = logs
        self.worker_cmd = worker_cmd
        self.workers: list[subprocess.Popen[bytes]] = []
        self.webs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.n = 0

    def _spawn(self, cmd: list[str], *args: str) -> subprocess.Popen[bytes]:
        self.n += 1
        log = (self.logs / f"proc-{self.n}.log").open("wb")
        return subprocess.Popen([*cmd, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start_worker(self) -> None:
        self.workers.append(self._spawn(self.worker_cmd, *WORKER_ARGS))

    def start_web(self, port: int) -> None:
        self.webs.append(
            self._spawn([sys.executable, "-m", "optsync.cli.main"], "serve", "--port", str(port))
        )

    def kill_random_worker(self, rng: random.Random) -> None:
        victim = rng.randrange(len(self.workers))
        self.workers[victim].send_signal(signal.SIGKILL)
        self.workers[victim].wait(10)
        self.kills += 1
        self.workers[victim] = self._spawn(self.worker_cmd, *WORKER_ARGS)

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
    return subprocess.run(
        [sys.executable, "-m", "optsync.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def _runs_near(snap: Snapshot, when: datetime) -> list[tuple[int, str, str, str, int]]:
    """Runs that were running within a minute of ``when``: id, status, start, finish, and
    how many persons each listed as re-opted out (to tell a stale pull from a listed one)."""
    window = timedelta(minutes=1)
    return [
        (
            r.id,
            r.status,
            str(r.started_at),
            str(r.finished_at),
            len(r.report.get("reopted_out") or []),
        )
        for r in snap.runs
        if r.started_at - window <= when <= (r.finished_at or when) + window
    ]


class Scenarios:
    """Persons set aside for re-subscribes and relinks, and what each must end as."""

    def __init__(self, fresh: list[tuple[int, str, str]], spares: list[str]) -> None:
        self.fresh = fresh  # (person id, email, salesforce id), never touched yet
        self.spares = spares  # Contacts no person is linked to
        self.preparing: list[tuple[int, str, str]] = []  # unsubscribed, push on its way
        self.cleared: dict[int, str] = {}  # re-subscribed after clearing: person -> record
        self.kept: set[int] = set()  # re-subscribed, Salesforce left set
        self.racing: set[int] = set()  # re-subscribed right after unsubscribing
        self.unlinked: set[int] = set()  # not-linked address unsubscribed and re-subscribed
        self.relinked: dict[int, str] = {}  # person -> the record it was relinked to
        self.relinked_from: dict[int, str] = {}  # person -> the record it was linked to before
        self.retried: set[int] = set()  # persons whose read-only failure was retried
        self.kinds = ["resub_cleared", "resub_kept", "relink", "resub_racing", "unlinked_cancel"]
        self.turn = 0

    def kind_of(self, pid: int) -> str:
        for name, group in (
            ("cleared", self.cleared),
            ("kept", self.kept),
            ("racing", self.racing),
            ("unlinked", self.unlinked),
        ):
            if pid in group:
                return name
        return "?"

    @property
    def resubscribed(self) -> set[int]:
        return set(self.cleared) | self.kept | self.racing | self.unlinked

    def check(
        self, snap: Snapshot, *, drained: bool, after_final_sync: bool, checked: Counter[str]
    ) -> list[str]:
        broken = []
        listed = {
            int(r["person_id"])
            for run in snap.runs
            for r in run.report.get("reopted_out", []) or []
        }
        for pid in self.resubscribed:
            p = snap.persons[pid]
            entries = snap.ledger.get(pid, [])
            last_resub = max(
                (i for i, e in enumerate(entries) if e.kind == "resubscribe"), default=None
            )
            if last_resub is None:
                broken.append(f"person {pid}: re-subscribed but no resubscribe entry")
                continue
            open_ = [r.id for r in snap.pushes.get(pid, []) if r.state in OPEN]
            if open_:  # invariant 2: the re-subscribe cancelled the open push
                broken.append(f"person {pid}: re-subscribed, yet pushes {open_} are open")
            later = entries[last_resub + 1 :]
            for e in later:  # only a sync may opt them out again, and it must say so
                if e.kind != "unsubscribe":
                    continue
                if e.source != "salesforce" or pid not in listed:
                    broken.append(
                        f"person {pid} ({self.kind_of(pid)}): unsubscribed again after the "
                        f"re-subscribe by {e.source}, listed in reopted_out: {pid in listed}; "
                        f"ledger {[(x.kind, x.source, str(x.created_at)) for x in entries]}; "
                        f"runs {_runs_near(snap, entries[last_resub].created_at)}"
                    )
            checked["inv2_resubscribes_checked"] += 1
        for pid, record in self.cleared.items():
            p = snap.persons[pid]
            rec = snap.remote.get(record, {})
            if p.unsubscribed or snap.ledger[pid][-1].kind != "resubscribe":
                history = [(e.kind, e.source) for e in snap.ledger[pid]]
                broken.append(
                    f"person {pid}: re-subscribed with Salesforce cleared, but "
                    f"unsubscribed again: {history}"
                )
            if rec.get(EMAIL) or rec.get(SALES):
                broken.append(
                    f"person {pid}: re-subscribed with Salesforce cleared, but "
                    f"the field was set again on {record}: {rec}"
                )
            checked["inv2_cleared_stayed_subscribed"] += 1
        for pid in self.unlinked:
            last = snap.latest_push(pid)
            if last is None or last.state != "cancelled":
                broken.append(f"person {pid}: not-linked push not cancelled: {last}")
            checked["inv2_not_linked_push_cancelled"] += 1
        if after_final_sync:
            for pid in self.kept:
                if not snap.persons[pid].unsubscribed or pid not in listed:
                    broken.append(
                        f"person {pid}: re-subscribed with Salesforce still set, "
                        f"but not opted out again by a sync (listed: {pid in listed}, "
                        f"ledger {[(e.kind, e.source) for e in snap.ledger[pid]]})"
                    )
                checked["inv2_kept_reopted_out"] += 1
            for pid in self.racing:
                checked[
                    "inv2_racing_reopted"
                    if snap.persons[pid].unsubscribed
                    else "inv2_racing_stayed_subscribed"
                ] += 1
        if drained:
            for pid, record in self.relinked.items():
                p = snap.persons[pid]
                last = snap.latest_push(pid)
                if p.salesforce_id != record:
                    broken.append(f"person {pid}: relinked to {record}, now {p.salesforce_id}")
                elif (
                    last is None
                    or last.state != "sent"
                    # the latest push may be a sync run's to another record of the
                    # address (its target is the run's primary): the relinked record
                    # must carry that push's field all the same
                    or not checks.has_field(snap.remote, record, [last.field or EMAIL])
                ):
                    broken.append(
                        f"person {pid}: relinked to {record}, but its push is {last} "
                        f"and the record is {snap.remote.get(record)}"
                    )
                checked["inv7_relinked_record_set"] += 1
            for pid in self.retried:
                last = snap.latest_push(pid)
                # sent, or failed again for another reason with its fix (a record deleted
                # since); never again on the read-only field
                if snap.persons[pid].unsubscribed and (
                    last is None
                    or last.state not in ("sent", "failed")
                    or (last.state == "failed" and (last.code == READ_ONLY_CODE or not last.fix))
                ):
                    broken.append(
                        f"person {pid}: read-only failure fixed and retried, but its push is {last}"
                    )
                checked["inv6_retried_ended_sent"] += 1
            for p in snap.persons.values():
                last = snap.latest_push(p.id)
                if last is not None and last.state == "failed" and last.code == READ_ONLY_CODE:
                    broken.append(
                        f"person {p.id}: push {last.id} still failed {READ_ONLY_CODE}"
                        " after the field was made updateable and pushes retried"
                    )
        return broken


def test_soak(emu, soak_db, tmp_path):
    db, url = soak_db
    postgres = url.startswith("postgresql")
    rng = random.Random(int(os.environ.get("OPTSYNC_SOAK_SEED", "8058")))
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, database_url=url)
    ctx = Context(settings=settings, db=db)
    ARTIFACTS.mkdir(exist_ok=True)
    soak_started = time.time()

    # -- an org and a store, linked; persons and spare records set aside for scenarios ----
    ids = emu.seed(contacts=1500, leads=1000)
    contacts, leads = list(ids["contact_ids"]), list(ids["lead_ids"])
    with SalesforceGateway(config_for(emu)) as gw:
        pull_persons(db, gw, now=ctx.clock())
    spares = list(emu.seed(contacts=max(40, int(DURATION / 15)))["contact_ids"])
    with db.transaction() as s:
        update_settings(
            s,
            {
                "sync_enabled": True,
                "field": "email_opt_out",
                "live_pull": LIVE,
                "poll_interval_s": POLL_INTERVAL_S,
            },
            actor="soak",
            now=ctx.clock(),
        )
        token = create_token(s, "soak", is_admin=True, now=ctx.clock())
        everyone = list(s.execute(select(Person.id, Person.email, Person.salesforce_id)))
    rng.shuffle(everyone)
    reserved = everyone[: len(everyone) // 3]
    reserved_records = {sid for _, _, sid in reserved}
    people = [(pid, email) for pid, email, _ in everyone[len(everyone) // 3 :]]
    scen = Scenarios([(pid, email, sid) for pid, email, sid in reserved], spares)
    links = UnsubscribeLinks.from_settings(settings)

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env.update(
        {
            "OPTSYNC_DATA_DIR": str(data_dir),
            "OPTSYNC_DATABASE_URL": url,
            **settings_env(emu),
        }
    )
    marker = tmp_path / "fault-fired.json"
    worker_cmd = [sys.executable, "-m", "optsync.cli.main"]
    if FAULT:
        kind, after = parse(FAULT)
        worker_cmd = worker_command(kind, str(marker), soak_started + after)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(env, logs, worker_cmd)
    ports = [free_port(), free_port()]
    for _ in range(4 if postgres else 2):
        procs.start_worker()
    for port in ports if postgres else ports[:1]:
        procs.start_web(port)
    web_urls = [f"http://127.0.0.1:{p}" for p in (ports if postgres else ports[:1])]
    client = httpx.Client(timeout=30)
    auth = {"Authorization": f"Bearer {token}"}
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
    if FAULT:
        time.sleep(2)
        assert all(w.poll() is None for w in procs.workers), (
            f"the fault could not be installed in the workers; see {logs}"
        )

    stats: Counter[str] = Counter()
    checked: Counter[str] = Counter()
    outcomes: list[tuple[str, str]] = []
    sync_threads: list[threading.Thread] = []
    timeline = FieldTimeline(initial=EMAIL, grace=GRACE)
    fls_windows: list[tuple[datetime, datetime]] = []
    ticks: list[checks.Tick] = []
    cdc_faults: Counter[str] = Counter()
    cdc_kinds = ["gap", "overflow", "drop", "stall"]
    stalls_to_end: list[float] = []

    def tick(record: str) -> None:
        """A Salesforce user ticks Email Opt Out; remember who was linked to the record."""
        with db.engine.connect() as c:
            row = c.execute(
                text("SELECT id, unsubscribed FROM persons WHERE salesforce_id = :r"),
                {"r": record},
            ).first()
        at = now_utc()
        emu.control("PATCH", f"records/{record}", {EMAIL: True})
        ticks.append(
            checks.Tick(
                record, row.id if row else None, at, bool(row.unsubscribed) if row else False
            )
        )

    def cdc_fault() -> None:
        """One Change Data Capture fault, in turn: a gap event for records ticked lately,
        an overflow, every stream dropped, every stream stalled (ended by a drop later)."""
        kind = cdc_kinds[sum(cdc_faults.values()) % len(cdc_kinds)]
        if kind == "gap":
            recent = [t.record_id for t in ticks[-20:]]
            prefix = rng.choice(["003", "00Q"])
            ids = [r for r in recent if r.startswith(prefix)][-5:]
            if not ids:
                ids = [r for r in recent if not r.startswith(prefix)][-5:]
            if not ids:
                return
            emu.control("POST", "pubsub/gap", {"record_ids": ids, "change_type": "UPDATE"})
        elif kind == "overflow":
            emu.control("POST", "pubsub/overflow", {"object": rng.choice(["Contact", "Lead"])})
        elif kind == "drop":
            emu.control("POST", "pubsub/streams/drop")
        else:
            emu.control("POST", "pubsub/streams/stall")
            stalls_to_end.append(time.monotonic() + STALL_S)
        cdc_faults[kind] += 1

    def sync_pair() -> None:
        def one() -> None:
            try:
                proc: subprocess.CompletedProcess[str] | None = run_cli(
                    env, "sync", "run", "--json", timeout=600
                )
            except subprocess.TimeoutExpired:
                proc = None
            outcomes.append(sync_outcome(proc))

        pair = [threading.Thread(target=one) for _ in range(2)]
        for t in pair:
            t.start()
        sync_threads.extend(pair)

    def checkpoint(
        where: str, *, drained: bool = False, after_final_sync: bool = False
    ) -> Snapshot:
        snap = checks.take_snapshot(db, emu.salesforce)
        raise_if(
            checks.check_pushed_or_failed(snap, drained=drained, checked=checked),
            "invariant 1 (every unsubscribe set in Salesforce or failed with a fix)",
            where,
        )
        raise_if(
            checks.check_address_records(snap, checked),
            "invariant 1b (every record of an unsubscribed address set)",
            where,
        )
        raise_if(checks.check_ledger(snap, checked), "invariant 3 (ledger agrees)", where)
        raise_if(checks.check_one_open_push(snap, checked), "invariant 4 (one open push)", where)
        raise_if(
            scen.check(snap, drained=drained, after_final_sync=after_final_sync, checked=checked),
            "invariants 2/6/7 (re-subscribes, retried failures, relinks)",
            where,
        )
        stats["checkpoints"] += 1
        return snap

    def api_unsubscribe(email: str) -> int:
        r = client.post(
            f"{rng.choice(web_urls)}/api/v1/unsubscribes", json={"email": email}, headers=auth
        )
        assert r.status_code in (200, 201), r.text
        return int(r.json()["person_id"])

    def api_resubscribe(pid: int) -> None:
        r = client.delete(
            f"{rng.choice(web_urls)}/api/v1/unsubscribes/{pid}",
            params={"reason": "soak: asked to hear from us again"},
            headers=auth,
        )
        assert r.status_code == 200 and r.json()["changed"], r.text

    def cli_resubscribe(email: str) -> None:
        out = run_cli(env, "resubscribe", email, "--reason", "soak: asked again")
        assert out.returncode == 0 and "Re-subscribed" in out.stdout, out.stdout + out.stderr

    def open_pushes(pid: int) -> list[tuple[int, str]]:
        with db.engine.connect() as c:
            return [
                tuple(r)
                for r in c.execute(
                    text(
                        "SELECT id, state FROM outbox WHERE person_id = :p AND state IN "
                        "('pending', 'in_flight', 'not_linked')"
                    ),
                    {"p": pid},
                )
            ]

    def latest_pushes(pids: list[int]) -> dict[int, tuple[str, str | None]]:
        if not pids:
            return {}
        with db.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT person_id, state, field FROM outbox WHERE id IN (SELECT max(id) FROM "
                    "outbox WHERE person_id IN (" + ",".join(str(int(p)) for p in pids) + ") "
                    "GROUP BY person_id)"
                )
            )
            return {r.person_id: (r.state, r.field) for r in rows}

    def scenario_step() -> None:
        """Prepare a reserved person (unsubscribe it) and run one scenario."""
        if len(scen.preparing) < 4 and scen.fresh:
            pid, email, sid = scen.fresh.pop()
            api_unsubscribe(email)
            scen.preparing.append((pid, email, sid))
        kind = scen.kinds[scen.turn % len(scen.kinds)]
        state = latest_pushes([p for p, _, _ in scen.preparing])
        ready = [t for t in scen.preparing if state.get(t[0], ("", None))[0] == "sent"]
        if kind == "resub_kept":
            # Salesforce keeps the field the push wrote; the next sync must sync that field
            # (see docs/push.md, "Long soak": a switch in between is not what this checks)
            in_force = timeline.switches[-1][2] if timeline.switches else EMAIL
            ready = [t for t in ready if state[t[0]][1] == EMAIL == in_force]
        scen.turn += 1
        if kind in ("resub_cleared", "resub_kept", "relink") and not ready:
            stats["scenarios_waiting"] += 1
            return
        if kind == "resub_cleared":  # clear Salesforce first, then re-subscribe at once
            pid, email, sid = ready[0]
            scen.preparing.remove(ready[0])
            emu.control("PATCH", f"records/{sid}", {EMAIL: False, SALES: False})
            api_resubscribe(pid)
            scen.cleared[pid] = sid
            stats["resub_cleared_while_a_sync_ran"] += any(t.is_alive() for t in sync_threads)
        elif kind == "resub_kept":  # re-subscribe (API), Salesforce left set
            pid, email, sid = ready[0]
            scen.preparing.remove(ready[0])
            api_resubscribe(pid)
            scen.kept.add(pid)
        elif kind == "relink":
            if not scen.spares:
                stats["relinks_no_spare"] += 1
                return
            pid, email, sid = ready[0]
            with db.engine.connect() as c:  # a push that failed on a deleted record, if any
                broken = c.execute(
                    text(
                        "SELECT p.id, p.email FROM persons p JOIN outbox o ON o.person_id = p.id "
                        "WHERE o.state = 'failed' AND o.last_error_code = 'ENTITY_IS_DELETED' "
                        "AND p.unsubscribed AND o.id = (SELECT max(id) FROM outbox WHERE "
                        "person_id = p.id)"
                    )
                ).first()
            if broken is not None and broken.id not in scen.relinked:
                pid, email = broken.id, broken.email
                stats["relinks_fixing_deleted"] += 1
            else:
                scen.preparing.remove(ready[0])
            record = scen.spares.pop()
            with db.engine.connect() as c:
                before = c.execute(
                    text("SELECT salesforce_id FROM persons WHERE id = :p"), {"p": pid}
                ).scalar()
            if before:
                scen.relinked_from[pid] = before
            r = client.post(
                f"{rng.choice(web_urls)}/api/v1/persons",
                json={"email": email, "salesforce_id": record},
                headers=auth,
            )
            assert r.status_code == 200, r.text
            scen.relinked[pid] = record
        elif kind == "resub_racing":  # re-subscribe while the push is on its way
            if not scen.fresh:
                return
            pid, email, sid = scen.fresh.pop()
            api_unsubscribe(email)
            api_resubscribe(pid)
            scen.racing.add(pid)
        else:  # a not-linked address: its waiting push must be cancelled
            email = f"soak-unlinked-{stats['unlinked_cancel']}@example.org"
            pid = api_unsubscribe(email)
            cli_resubscribe(email)
            scen.unlinked.add(pid)
        if kind != "relink":
            assert not open_pushes(pid), f"{kind}: person {pid} keeps {open_pushes(pid)} open"
        stats[kind] += 1

    def set_field(name: str) -> None:
        before = now_utc()
        out = run_cli(env, "settings", "set", "--field", name)
        assert out.returncode == 0, out.stdout + out.stderr
        timeline.switches.append((before, now_utc(), SF_FIELD[name]))
        stats["field_switches"] += 1

    def read_only(on: bool) -> None:
        emu.control("PUT", f"fields/Contact/{EMAIL}", {"visible": True, "updateable": not on})
        if on:
            fls_windows.append((now_utc(), now_utc()))
            stats["read_only_windows"] += 1
        else:
            fls_windows[-1] = (fls_windows[-1][0], now_utc())

    def retry_failed(flags: list[str]) -> None:
        with db.engine.connect() as c:
            failing = {
                r.person_id
                for r in c.execute(
                    text(
                        "SELECT person_id FROM outbox WHERE state = 'failed' AND last_error_code = "
                        f"'{READ_ONLY_CODE}'"
                    )
                )
            }
        out = run_cli(env, "push", "retry", *flags)
        assert out.returncode == 0, (
            f"optsync push retry {' '.join(flags)}: {out.stdout}{out.stderr}"
        )
        scen.retried |= failing
        stats["retries"] += 1
        stats["pushes_failed_then_retried"] += len(failing)

    # per cycle: (offset as a share of the cycle, action)
    n_cycles = max(1, round(DURATION / CYCLE_S))
    cycle = DURATION / n_cycles
    plan: list[tuple[float, str, int]] = []
    for k in range(n_cycles):
        for share, what in (
            (0.15, "field_sales"),
            (0.45, "field_email"),
            (0.50, "daily_limit"),
            (0.60, "read_only_on"),
            (0.67, "read_only_off"),
        ):
            plan.append((k * cycle + share * cycle, what, k))
    plan.sort()
    deferred: list[tuple[float, str, int]] = []

    def run_planned(what: str, k: int) -> None:
        if what == "field_sales":
            set_field("sales_opt_out")
        elif what == "field_email":
            set_field("email_opt_out")
        elif what == "daily_limit":
            used = emu.control("GET", "counters")["total"]
            emu.settings(daily_api_limit=used)
            time.sleep(2)
            emu.settings(daily_api_limit=10_000_000)
            stats["daily_limit_exhaustions"] += 1
        elif what == "read_only_on":
            read_only(True)
        elif what == "read_only_off":
            read_only(False)
            deferred.append((time.monotonic() + GRACE.total_seconds(), "retry", k))
        elif what == "retry":  # the short soak retries everything, the long one by code too
            retry_failed(["--all-failed"] if k % 2 == 0 else ["--code", READ_ONLY_CODE])

    try:
        started = time.monotonic()
        next_kill = started + 5
        next_expire = started + 3
        next_sync = started + 8
        next_faults = started
        next_cdc_fault = started + 2
        next_scenario = started + 1
        scenario_every = max(1.5, DURATION / 600)
        unconverted = [lead for lead in leads if lead not in reserved_records]
        live_contacts = [c for c in contacts if c not in reserved_records]
        while time.monotonic() - started < DURATION:
            pid, email = rng.choice(people)
            how = rng.random()
            if how < 0.45:  # RFC 8058 one-click from a mailbox provider
                r = client.post(
                    links.for_person(pid).url.replace(settings.base_url, rng.choice(web_urls)),
                    data={"List-Unsubscribe": "One-Click"},
                )
                assert r.status_code == 200, r.text
                stats["one_click"] += 1
            elif how < 0.8:  # the REST API
                r = client.post(
                    f"{rng.choice(web_urls)}/api/v1/unsubscribes",
                    json={"email": email},
                    headers=auth,
                )
                assert r.status_code in (200, 201), r.text
                stats["api"] += 1
            elif how < 0.82:  # the CLI
                assert run_cli(env, "unsubscribe", email).returncode == 0
                stats["cli"] += 1
            else:  # Salesforce users
                what = rng.random()
                if what < 0.7:  # a user ticks Email Opt Out on a live record
                    tick(rng.choice(live_contacts + unconverted))
                    stats["salesforce_opt_out"] += 1
                elif what < 0.85 and unconverted:
                    lead = unconverted.pop(rng.randrange(len(unconverted)))
                    live_contacts.append(
                        emu.control("POST", f"records/{lead}/convert")["contact_id"]
                    )
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
            if now >= next_cdc_fault:
                cdc_fault()
                next_cdc_fault = now + CDC_FAULT_EVERY_S
            for due in [d for d in stalls_to_end if now >= d]:
                stalls_to_end.remove(due)
                emu.control("POST", "pubsub/streams/drop")  # the stalled streams end
                cdc_faults["stall_ended_by_drop"] += 1
            if now >= next_expire:
                emu.control("POST", "sessions/expire")
                stats["session_expiries"] += 1
                next_expire = now + rng.uniform(3, 8)
            while plan and now - started >= plan[0][0]:
                _, what, k = plan.pop(0)
                run_planned(what, k)
            for item in [d for d in deferred if now >= d[0]]:
                deferred.remove(item)
                run_planned(item[1], item[2])
            if now >= next_scenario:
                scenario_step()
                next_scenario = time.monotonic() + scenario_every
            if now >= next_kill:
                procs.kill_random_worker(rng)
                next_kill = now + rng.uniform(4, 9)
            if now >= next_sync:
                if any(t.is_alive() for t in sync_threads):
                    next_sync = now + 1  # the previous pair is still running
                else:
                    checkpoint(
                        f"checkpoint {stats['checkpoints'] + 1}, before sync pair "
                        f"{stats['sync_pairs'] + 1} ({now - started:.0f} s)"
                    )
                    sync_pair()
                    stats["sync_pairs"] += 1
                    next_sync = time.monotonic() + rng.uniform(8, 15)

        # -- calm down and drain; check everything BEFORE any final sync -------------------
        while plan:  # a cycle cut short still restores the field and the field security
            _, what, k = plan.pop(0)
            if what in ("field_email", "read_only_off"):
                run_planned(what, k)
        emu.settings(fault_rate=0.0, latency_ms=0, jitter_ms=0, daily_api_limit=10_000_000)
        for t in sync_threads:
            t.join(600)
        for due, what, k in sorted(deferred):
            time.sleep(max(0.0, due - time.monotonic()))
            run_planned(what, k)
        for _ in stalls_to_end:  # a stall the loop did not get to end
            emu.control("POST", "pubsub/streams/drop")
        # a last round of Salesforce-side opt-outs, after every sync pair: only the live
        # pull can apply these before the final sync
        while timeline.at(now_utc()) != EMAIL:
            time.sleep(0.5)
        with db.engine.connect() as c:
            linked = {
                r.salesforce_id
                for r in c.execute(text("SELECT salesforce_id FROM persons WHERE NOT unsubscribed"))
            }
        candidates = [r for r in live_contacts + unconverted if r in linked]
        for record in rng.sample(candidates, min(DRAIN_TICKS, len(candidates))):
            tick(record)
            stats["salesforce_opt_out_while_draining"] += 1
        deadline = time.monotonic() + 180
        while True:
            with db.engine.connect() as c:
                open_ = c.execute(
                    text("SELECT count(*) FROM outbox WHERE state IN ('pending', 'in_flight')")
                ).scalar_one()
            if open_ == 0:
                break
            if time.monotonic() > deadline:
                with db.engine.connect() as c:
                    stuck = c.execute(
                        text(
                            "SELECT id, state, attempts, next_attempt_at, claimed_until, "
                            "last_error_code FROM outbox WHERE state IN ('pending', 'in_flight')"
                        )
                    ).all()
                raise AssertionError(f"pushes still open after the soak: {stuck[:5]}")
            time.sleep(0.5)
        live_started = time.monotonic()
        while True:  # invariant 9, allowing for a catch-up after the last fault
            probe = checks.take_snapshot(db, emu.salesforce)
            live_broken = checks.check_live_opt_outs(
                probe, ticks, timeline, settle=LIVE_SETTLE, checked=Counter()
            )
            if not live_broken or time.monotonic() - live_started > LIVE_WAIT_S:
                break
            time.sleep(2)
        live_wait_s = time.monotonic() - live_started
        drained = checkpoint("the drain, before the final sync", drained=True)
        raise_if(
            checks.check_live_opt_outs(
                drained, ticks, timeline, settle=LIVE_SETTLE, checked=checked
            ),
            f"invariant 9 (Salesforce-side opt-outs applied before the final sync; live pull "
            f"{LIVE}, waited {live_wait_s:.0f} s)",
            "the drain",
        )
        raise_if(
            checks.check_field_in_force(drained, timeline, checked),
            "invariant 8 (the field in force)",
            "the drain",
        )

        final = run_cli(env, "sync", "run", "--json")
        assert final.returncode == 0, final.stdout + final.stderr
        final_report = json.loads(final.stdout)
        assert final_report["status"] == "succeeded"
        time.sleep(1)  # pushes the final run queued (relinks) reach the workers
        after = checkpoint("after the final sync", after_final_sync=True)
        raise_if(
            checks.check_every_record_of_the_address(after, final_report, checked),
            "invariant 10 (every record of an unsubscribed address is set)",
            "after the final sync",
        )
    finally:
        procs.stop()
        client.close()

    # -- invariant 5: every racing start accounted for; runs never overlapped -------------
    bad = [o for o in outcomes if o[0] == "unexplained"]
    assert not bad, f"invariant 5: sync starts with no stated outcome: {bad[:5]}"
    kinds = Counter(kind for kind, _ in outcomes)
    assert sum(kinds.values()) == 2 * stats["sync_pairs"]
    checked["inv5_sync_starts_accounted"] = sum(kinds.values())
    raise_if(checks.check_runs_never_overlap(after, checked), "invariant 5 (runs)", "the end")

    # -- after the final sync: Salesforce opt-outs are here, nothing re-subscribed by sync --
    broken = []
    for person in after.persons.values():
        rec = after.remote.get(person.salesforce_id or "")
        if rec and rec.get(EMAIL) and not rec["IsDeleted"] and not rec.get("IsConverted"):
            if not person.unsubscribed:
                broken.append(f"person {person.id}: Salesforce opt-out on {rec['Id']} not pulled")
            checked["salesforce_opt_out_present_here"] += 1
    raise_if(broken, "the pull (Salesforce opt-outs are unsubscribes here)", "the end")
    sync_resubscribes = [
        pid
        for pid, entries in after.ledger.items()
        for e in entries
        if e.kind == "resubscribe" and e.source == "salesforce"
    ]
    assert not sync_resubscribes, f"a sync re-subscribed {sync_resubscribes[:5]}"
    checked["no_resubscribe_by_sync"] = 1
    opted_sales = {rid for rid, r in after.remote.items() if r.get(SALES)}
    ever_unsubscribed = {
        p.salesforce_id
        for p in after.persons.values()
        if any(e.kind == "unsubscribe" for e in after.ledger.get(p.id, []))
    }
    ever_unsubscribed |= {r.target_id for rows in after.pushes.values() for r in rows}
    ever_unsubscribed |= {
        after.remote[i].get("ConvertedContactId")
        for i in set(ever_unsubscribed)
        if i in after.remote
    }
    # A Lead set while its person was linked to it, converted afterwards (the person is
    # relinked to the Contact, and a sync's pushes leave no outbox row), and the records
    # persons were relinked away from, count as that person's records too.
    ever_unsubscribed |= {
        rid
        for rid, r in after.remote.items()
        if r.get("ConvertedContactId") and r["ConvertedContactId"] in ever_unsubscribed
    }
    ever_unsubscribed |= set(scen.relinked_from.values())
    stray = opted_sales - ever_unsubscribed
    assert not stray, f"Sales Opt Out set on records no unsubscribed person had: {stray}"
    checked["no_wrong_field"] = len(after.remote)
    if FAULT:
        assert marker.exists(), f"OPTSYNC_SOAK_FAULT={FAULT} never fired"
        raise AssertionError(
            f"OPTSYNC_SOAK_FAULT={FAULT} fired ({marker.read_text()}) "
            "but every invariant held: the soak cannot see lost pushes"
        )

    runs = after.runs
    failed = [r for rows in after.pushes.values() for r in rows if r.state == "failed"]
    summary = {
        "commit": _commit(),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": "postgresql" if postgres else "sqlite",
        "duration_s": DURATION,
        "workers": len(procs.workers),
        "web_processes": len(web_urls),
        "unsubscribes_requested": stats["one_click"] + stats["api"] + stats["cli"],
        "by_source": {k: stats[k] for k in ("one_click", "api", "cli")},
        "salesforce_side": {k: stats[k] for k in ("salesforce_opt_out", "conversions", "deletes")},
        "scenarios": {
            k: stats[k]
            for k in (
                "resub_cleared",
                "resub_cleared_while_a_sync_ran",
                "resub_kept",
                "resub_racing",
                "unlinked_cancel",
                "relink",
                "relinks_fixing_deleted",
                "field_switches",
                "read_only_windows",
                "retries",
                "pushes_failed_then_retried",
                "scenarios_waiting",
            )
        },
        "faults": {
            "fault_rate": 0.15,
            "latency_spikes": stats["latency_spikes"],
            "session_expiries": stats["session_expiries"],
            "daily_limit_exhaustions": stats["daily_limit_exhaustions"],
            "worker_kills": procs.kills,
        },
        "live_pull": {
            "mode": LIVE,
            "poll_interval_s": POLL_INTERVAL_S,
            "salesforce_opt_outs_ticked": len(ticks),
            "ticked_while_draining": stats["salesforce_opt_out_while_draining"],
            "checked": checked["inv9_salesforce_opt_outs_checked"],
            "applied_by_live_pull": checked["inv9_applied_by_live_pull"],
            "applied_by_a_sync": checked["inv9_applied_by_a_sync"],
            "already_unsubscribed": checked["inv9_already_unsubscribed"],
            "cdc_faults": dict(cdc_faults),
            "waited_at_the_drain_s": round(live_wait_s, 1),
        },
        "checkpoints": stats["checkpoints"],
        "sync_runs": len(runs),
        "sync_starts": dict(kinds),
        "sync_failure_reasons": dict(
            Counter(reason for kind, reason in outcomes if kind == "failed")
        ),
        "persons_unsubscribed": sum(p.unsubscribed for p in after.persons.values()),
        "permanent_failures": len(failed),
        "invariants_checked": dict(sorted(checked.items())),
        "final_run": {k: final_report[k] for k in ("pulled", "pushed", "failed", "reopted_out")},
    }
    summary["final_run"]["reopted_out"] = len(final_report["reopted_out"])
    (ARTIFACTS / f"soak-summary-{summary['database']}.json").write_text(
        json.dumps(summary, indent=2)
    )
    print(json.dumps(summary))
