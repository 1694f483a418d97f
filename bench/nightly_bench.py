"""Benchmark: the nightly unsubscribe sync at 250,000 to 1,000,000 persons (or more).

Usage:
    python bench/nightly_bench.py [--sizes 1000000,250000,500000]
                                  [--postgres-url postgresql://postgres@127.0.0.1/test]
                                  [--duplicates 0.1] [--changes 1000]
                                  [--profile DIR]

For each size N it:

1. starts (once) the Salesforce emulator as a subprocess (``optsync emulator --memory``),
   so its memory is not counted as optsync's, resets it and seeds N records (half
   Contacts, half Leads); with ``--duplicates F`` a fraction F of them carries the
   address of another seeded record (a duplicate Contact, a Lead with a Contact's
   address, some differing in case);
2. opts out 15 % of the records in the emulator with a Bulk ingest job (setup, not
   measured), and creates a store with one person per address, linked to a record that
   carries it (the records' addresses are read with a Bulk query and deduplicated in
   SQL, so no size is held in memory), 15 % unsubscribed, half of them overlapping the
   remote opt-outs: about 7.5 % of N to pull and 7.5 % to push, plus the duplicates of
   every opted-out address (fan-out);
3. runs the sync in a fresh child process (so ``ru_maxrss`` is the sync's own peak) and
   prints wall time, peak memory, API calls (run report and the emulator's counters) and
   the calls a naive per-record REST update would have needed. The first run reads every
   record into optsync's record mirror;
4. runs it again (the "settle" run: it reads back the records the first run set, which
   Salesforce stamped after the mirror's watermark), then changes ``--changes`` records
   in Salesforce (ticks the field on records not opted out yet, by Bulk ingest: setup)
   and runs again: the run reads only the records changed since the last (the mirror's
   watermark; no overlap, since the whole org was seeded minutes before and a 10-minute
   overlap would re-read it), diffs only the persons and records changed since the last
   complete run (no margin either: the runs are minutes apart, not a night), pulls their
   addresses, sets their duplicates, and its API calls are counted;
5. runs it a last time: it must change nothing.

Finally it fits time against N and states the 10,000,000-person extrapolation.
SQLite by default; ``--postgres-url`` runs the store on a fresh PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from optsync.domain.ids import make_id
from optsync.store.db import Database
from optsync.store.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MOD = 40
REMOTE = range(0, 6)  # i % 40 in 0..5 -> 15 % opted out in Salesforce
LOCAL = range(3, 9)  # i % 40 in 3..8 -> 15 % unsubscribed here; 3..5 overlap (7.5 %)


def record_id(i: int, n: int) -> tuple[str, str]:
    """The emulator's id of global record ``i``: Contacts 0..n/2-1, then Leads."""
    half = n // 2
    if i < half:
        return make_id("003", i + 1), "Contact"
    return make_id("00Q", i - half + 1), "Lead"


def record_index(record: str, n: int) -> int:
    """The inverse of :func:`record_id`: the global index of an emulator id."""
    num = 0
    for ch in record[5:15]:
        num = num * 62 + DIGITS.index(ch)
    return num - 1 if record.startswith("003") else n // 2 + num - 1


# -- the emulator -----------------------------------------------------------------------


class EmulatorProcess:
    def __init__(self, workdir: Path) -> None:
        env = {**os.environ, "OPTSYNC_DATA_DIR": str(workdir / "emulator")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optsync.cli.main",
                "emulator",
                "--memory",
                "--port",
                "0",
                "--json",
                "--daily-api-limit",
                "100000000",
                # an org without Change Data Capture: the nightly sync is the net for orgs
                # that have none, and Salesforce generates change events asynchronously
                # anyway, so the emulator's capture is no part of the sync's cost
                "--without-cdc",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the emulator did not start")
        self.info: dict[str, Any] = json.loads(line)
        import requests

        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = self.info["ca_bundle"]
        self.control_url = self.info["instance_url"] + "/__emulator__"

    def control(self, method: str, path: str, body: Any = None) -> Any:
        # seeding is one synchronous request: 10,000,000 records take the emulator several
        # minutes on a shared 2-core machine, past a 600 s read timeout
        resp = self.http.request(method, f"{self.control_url}/{path}", json=body, timeout=3600)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def connection(info: dict[str, Any]) -> Any:
    from optsync.salesforce.connection import ConnectionConfig

    return ConnectionConfig(
        auth="client_credentials",
        login_url=info["login_url"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        ca_bundle=info["ca_bundle"],
    ).validated()


def opt_out_remotely(info: dict[str, Any], n: int) -> int:
    """Set HasOptedOutOfEmail on 15 % of the records with Bulk ingest (setup)."""
    from optsync.salesforce.bulk import BulkApi
    from optsync.salesforce.gateway import SalesforceGateway

    done = 0
    with SalesforceGateway(connection(info)) as gw:
        bulk = BulkApi(gw, poll_initial=0.2, poll_max=1.0)
        for obj in ("Contact", "Lead"):
            ids = (
                record_id(i, n)[0]
                for i in range(n)
                if i % MOD in REMOTE and record_id(i, n)[1] == obj
            )
            outcome = bulk.set_opt_out(obj, "HasOptedOutOfEmail", ids)
            if outcome.failures:
                raise SystemExit(f"setup failed: {outcome.failures[:3]}")
            done += outcome.sent
    return done


# -- the store --------------------------------------------------------------------------


def org_rows(info: dict[str, Any], n: int, now: str) -> Iterator[tuple[Any, ...]]:
    """One row per seeded record, with its address (read by Bulk query: setup), as the
    persons-load staging rows ``(email, record, object, unsubscribed, …)``."""
    from optsync.salesforce.bulk import BulkApi
    from optsync.salesforce.gateway import SalesforceGateway

    with SalesforceGateway(connection(info)) as gw:
        bulk = BulkApi(gw, poll_initial=0.2, poll_max=1.0)
        for obj in ("Contact", "Lead"):
            for rec in bulk.query_records(f"SELECT Id, Email FROM {obj}"):
                sf, email = str(rec["Id"]), str(rec["Email"] or "").strip().lower()
                if not email:
                    continue
                unsub = record_index(sf, n) % MOD in LOCAL
                yield (
                    email,
                    sf,
                    obj,
                    unsub,
                    now if unsub else None,
                    "api" if unsub else None,
                    now,
                    now,
                )


@contextmanager
def fresh_database(n: int, workdir: Path, pg_admin: str | None) -> Iterator[str]:
    """A new, empty store for one size: a SQLite file, or a scratch PostgreSQL database."""
    if pg_admin is None:
        yield f"sqlite:///{workdir / f'store-{n}-{uuid.uuid4().hex[:6]}.db'}"
        return
    with scratch_database(pg_admin, prefix="optsync_bench") as url:
        yield url


def load_persons(url: str, n: int, info: dict[str, Any]) -> tuple[float, int]:
    """One person per address, linked to the lowest record id that carries it: the
    records' addresses are streamed into a staging table (executemany on SQLite, COPY on
    PostgreSQL) and deduplicated by the database. Returns (seconds, persons)."""
    db = Database(url)
    db.upgrade()
    db.dispose()
    started = time.perf_counter()
    now = "2026-11-24 12:00:00"
    cols = (
        "email, salesforce_id, salesforce_object, unsubscribed, unsubscribed_at, "
        "unsubscribe_source, created_at, updated_at"
    )
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        with conn:
            conn.execute(f"CREATE TEMP TABLE load ({cols})")
            conn.executemany(
                f"INSERT INTO load ({cols}) VALUES (?,?,?,?,?,?,?,?)", org_rows(info, n, now)
            )
            conn.execute(
                f"INSERT OR IGNORE INTO persons ({cols}) SELECT {cols} FROM load "
                "ORDER BY salesforce_id"
            )
            persons = conn.execute("SELECT count(*) FROM persons").fetchone()[0]
        conn.close()
    else:
        import psycopg

        pg = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(pg) as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE UNLOGGED TABLE persons_load (email text, salesforce_id text, "
                "salesforce_object text, unsubscribed boolean, unsubscribed_at timestamptz, "
                "unsubscribe_source text, created_at timestamptz, updated_at timestamptz)"
            )
            with cur.copy(f"COPY persons_load ({cols}) FROM STDIN") as copy:
                for row in org_rows(info, n, now + "+00"):
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO persons ({cols}) SELECT DISTINCT ON (email) {cols} "
                "FROM persons_load ORDER BY email, salesforce_id"
            )
            cur.execute("DROP TABLE persons_load")
            cur.execute("SELECT count(*) FROM persons")
            row = cur.fetchone()
            persons = int(row[0]) if row else 0
            cur.execute("ANALYZE persons")
    return time.perf_counter() - started, int(persons)


def change_records(info: dict[str, Any], n: int, count: int) -> int:
    """Tick the field on ``count`` records that do not have it yet (a Salesforce user's
    day), by Bulk ingest (setup)."""
    from optsync.salesforce.bulk import BulkApi
    from optsync.salesforce.gateway import SalesforceGateway

    done = 0
    with SalesforceGateway(connection(info)) as gw:
        bulk = BulkApi(gw, poll_initial=0.2, poll_max=1.0)
        for obj in ("Contact", "Lead"):
            # indexes 10..39 of each 40 are neither opted out there nor unsubscribed here
            wanted = count // 2 if obj == "Contact" else count - count // 2
            ids = []
            for i in range(n):
                if len(ids) >= wanted:
                    break
                sf, kind = record_id(i, n)
                if kind == obj and i % MOD >= 10:
                    ids.append(sf)
            done += bulk.set_opt_out(obj, "HasOptedOutOfEmail", ids).sent
    return done


# -- one measured run (in a child process) -----------------------------------------------


def child_run(url: str, info_json: str, out: str, overlap_s: str = "600") -> None:
    from datetime import timedelta

    from optsync.clock import utcnow
    from optsync.salesforce.gateway import SalesforceGateway
    from optsync.services.sync_run import SyncOptions, run_sync
    from optsync.store.db import Database

    info = json.loads(info_json)
    db = Database(url)
    # the runs follow each other within minutes: the margins that cover late commits and
    # skewed clocks between nightly runs a day apart would take in the previous run's
    # whole work here, so the later runs go without them (as the overlap)
    margin = timedelta(seconds=float(overlap_s))
    options = SyncOptions(mirror_overlap=margin, scope_margin=margin)
    profile_dir = os.environ.get("OPTSYNC_BENCH_PROFILE")
    profiler = None
    if profile_dir:  # --profile: where the run's time goes (cProfile adds its own cost)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    with SalesforceGateway(connection(info)) as gw:
        report = run_sync(db, gw, clock=utcnow, options=options)
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(Path(profile_dir) / f"{Path(out).stem}.prof"))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out).write_text(json.dumps({"report": report, "wall_s": wall, "peak_mb": peak_kb / 1024}))


def measured_run(
    url: str, emu: EmulatorProcess, workdir: Path, overlap_s: float = 600
) -> dict[str, Any]:
    out = workdir / f"run-{uuid.uuid4().hex[:6]}.json"
    before = emu.control("GET", "counters")["total"]
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-run",
            url,
            json.dumps(emu.info),
            str(out),
            str(overlap_s),
        ],
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.read_text())
    result["emulator_calls"] = emu.control("GET", "counters")["total"] - before
    return result


def show(label: str, r: dict[str, Any]) -> None:
    rep = r["report"]
    print(
        f"  {label}: status {rep['status']}, wall {r['wall_s']:.1f} s, peak RSS "
        f"{r['peak_mb']:.0f} MB, API calls {rep['api_calls']} (report) / "
        f"{r['emulator_calls']} (emulator counters)"
    )
    print(
        f"    remote opted out {rep['remote_opted_out']:,}, local unsubscribed "
        f"{rep['local_unsubscribed']:,}, pulled {rep['pulled']:,}, pushed {rep['pushed']:,}, "
        f"failed {rep['failed']}, fetch via {rep.get('fetch_via')}, push via "
        f"{rep.get('push_via')}"
    )
    mirror = rep.get("mirror") or {}
    print(
        f"    mirror read {mirror.get('read')} ({mirror.get('records_read', 0):,} records), "
        f"records set {rep.get('records_set')}, addresses fanned out "
        f"{rep.get('addresses_fanned_out', 0):,}, duplicate addresses "
        f"{rep.get('duplicates', 0):,}, auto-linked {rep.get('auto_linked', 0):,}, unknown "
        f"addresses suppressed {rep.get('suppressed_unknown', 0):,}, not in Salesforce "
        f"{rep.get('not_in_salesforce', 0):,}"
    )
    print(f"    phases (s): {rep.get('phases')}")
    if rep["status"] != "succeeded":
        print(f"    error: {rep['error']}")


def bench_size(
    n: int,
    emu: EmulatorProcess,
    workdir: Path,
    pg_admin: str | None,
    second: bool,
    duplicates: float,
    changes: int,
) -> dict[str, Any]:
    print(
        f"\n== {n:,} persons / {n:,} Salesforce records "
        f"({'PostgreSQL' if pg_admin else 'SQLite'}) =="
    )
    t = time.perf_counter()
    emu.control("POST", "reset")
    emu.control(
        "POST",
        "seed",
        {"contacts": n // 2, "leads": n - n // 2, "duplicate_fraction": duplicates},
    )
    opted = opt_out_remotely(emu.info, n)
    print(
        f"  setup: emulator seeded and {opted:,} records opted out in "
        f"{time.perf_counter() - t:.1f} s"
    )
    with fresh_database(n, workdir, pg_admin) as url:
        took, persons = load_persons(url, n, emu.info)
        print(f"  setup: {persons:,} persons (one per address) inserted in {took:.1f} s")
        first = measured_run(url, emu, workdir)
        show("first run ", first)
        pushed = first["report"]["pushed"]
        print(
            f"    a naive per-record REST update would need {pushed:,} API calls for the "
            f"pushes alone (one PATCH per record), vs {first['report']['api_calls']} here"
        )
        if second:
            settle = measured_run(url, emu, workdir, overlap_s=0)
            show("settle run", settle)
            print(
                "    (reads back the first run's own writes, stamped after its watermark: "
                "the initial reconciliation's one-off cost)"
            )
            ticked = change_records(emu.info, n, changes) if changes else 0
            print(f"  setup: {ticked:,} records changed in Salesforce (field ticked)")
            again = measured_run(url, emu, workdir, overlap_s=0)
            show(f"run after {ticked:,} changes", again)
            last = measured_run(url, emu, workdir, overlap_s=0)
            show("last run  ", last)
            zero = last["report"]["pulled"] == 0 and last["report"]["pushed"] == 0
            print(f"    last run changes nothing: {'yes' if zero else 'NO'}")
        return first


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-run":
        child_run(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,250000,500000")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        help="fraction of records carrying another record's address (e.g. 0.1)",
    )
    parser.add_argument(
        "--changes",
        type=int,
        default=1000,
        help="records changed in Salesforce before the second run",
    )
    parser.add_argument(
        "--second-run-all",
        action="store_true",
        help="also re-run at every size (default: only the first size)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="write a cProfile of each sync run to DIR (the times then include its cost)",
    )
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        os.environ["OPTSYNC_BENCH_PROFILE"] = str(Path(args.profile).resolve())
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    pg_admin = args.postgres_url
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="optsync-bench-") as tmp:
        workdir = Path(tmp)
        emu = EmulatorProcess(workdir)
        try:
            results = {}
            for index, n in enumerate(sizes):
                results[n] = bench_size(
                    n,
                    emu,
                    workdir,
                    pg_admin,
                    second=index == 0 or args.second_run_all,
                    duplicates=args.duplicates,
                    changes=args.changes,
                )
        finally:
            emu.stop()
    points = sorted(
        (n, r["wall_s"]) for n, r in results.items() if r["report"]["status"] == "succeeded"
    )
    print("\n== scaling (first run) ==")
    for n, s in points:
        print(f"  {n:>10,} persons: {s:7.1f} s  ({s / n * 1e6:.1f} s per million)")
    if len(points) >= 2:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        intercept = my - slope * mx
        print(f"  linear fit: {intercept:.1f} s + {slope * 1e6:.1f} s per million persons")
        print(
            f"  extrapolated to 10,000,000 persons (1.5M opt-outs each side): "
            f"{intercept + slope * 10_000_000:.0f} s"
        )


if __name__ == "__main__":
    main()
