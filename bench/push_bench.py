"""Benchmark: how fast an unsubscribe reaches Salesforce, and what it costs in API calls.

Usage:
    python bench/push_bench.py [--latency-ms 100] [--rate 50] [--seconds 20] [--burst 10000]
                               [--duplicates 0.1]
                               [--postgres-url postgresql://postgres@127.0.0.1/test]

``--duplicates F``: an org where that share of the seeded records carries the address of
another record (a second Contact, a Lead; the emulator's ``duplicate_fraction``, a third
of them in another case). Persons are then the org's distinct addresses, each linked to
one of its records; an unsubscribe must reach every record of its address (the push looks
them up, one Composite call per batch of addresses), and the latency of an address is
the time until its *last* record was set.

Runs the emulator as a separate process (``optsync emulator --memory --latency-ms 100``:
every API call takes at least 100 ms), a store (SQLite file, or PostgreSQL) with persons
linked to the emulator's Contacts and Leads, and the push worker in this process (as
``optsync up`` does). Unsubscribes are recorded through the same service the API and CLI
call, one transaction each; latency is measured from the moment that call returns to the
``SystemModstamp`` the emulator stamped when it set the field. Prints p50/p99 for a steady
rate and for a burst, and API calls per 1,000 pushes, next to the naive alternatives.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from emulator_process import start_emulator
from org_reads import opted_out_stamps, record_emails
from sqlalchemy import text

from optsync.store.scratch import scratch_database


def http(info: dict[str, str]) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = info["ca_bundle"]
    return s


def control(info: dict[str, str], method: str, path: str, body: object = None) -> dict:
    url = info["instance_url"] + "/__emulator__/" + path
    with http(info) as s:
        r = s.request(method, url, json=body, timeout=600)
    r.raise_for_status()
    return r.json() if r.content else {}


def stamps(info: dict[str, str]) -> dict[str, float]:
    """SystemModstamp (epoch seconds) of every opted-out record, read after the run."""
    with http(info) as s:
        return opted_out_stamps(s, info, "HasOptedOutOfEmail")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(label: str, database_url: str, args: argparse.Namespace, tmp: Path) -> None:
    emulator, info = start_emulator(tmp / f"emu-{label}", args.latency_ms)
    try:
        os.environ.update(
            {
                "OPTSYNC_DATA_DIR": str(tmp / f"data-{label}"),
                "OPTSYNC_DATABASE_URL": database_url,
                "OPTSYNC_SF_AUTH": "client_credentials",
                "OPTSYNC_SF_LOGIN_URL": info["login_url"],
                "OPTSYNC_SF_CLIENT_ID": info["client_id"],
                "OPTSYNC_SF_CLIENT_SECRET": info["client_secret"],
                "OPTSYNC_SF_CA_BUNDLE": info["ca_bundle"],
            }
        )
        from optsync.bootstrap import open_context
        from optsync.domain.optout import Source
        from optsync.services import optouts
        from optsync.services.bulk_unsubscribes import unsubscribe_many
        from optsync.services.persons import PersonInput, upsert_chunk
        from optsync.store.db import Database
        from optsync.worker.runner import Worker

        Database(database_url).upgrade()
        steady_n = args.rate * args.seconds
        need = steady_n + args.burst
        ids: list[str] = []
        # the records of each person's address (one, unless --duplicates)
        records_of: dict[str, list[str]] = {}
        emails: list[str] = []
        if args.duplicates:
            # enough records for `need` distinct addresses
            total = int(need / (1 - args.duplicates)) + 50
            seeded_n = 0
            while seeded_n < total:
                chunk = min(total - seeded_n, 10_000)
                control(
                    info,
                    "POST",
                    "seed",
                    {
                        "contacts": chunk // 2,
                        "leads": chunk - chunk // 2,
                        "duplicate_fraction": args.duplicates,
                        "opted_out_fraction": 0.0,
                    },
                )
                seeded_n += chunk
            with http(info) as s:
                by_email: dict[str, list[str]] = {}
                for rid, email in sorted(record_emails(s, info).items()):
                    by_email.setdefault(email.lower(), []).append(rid)
            for email, rids in list(by_email.items())[:need]:
                rids.sort(key=lambda r: (not r.startswith("003"), r))
                ids.append(rids[0])
                emails.append(email)
                records_of[rids[0]] = rids
            dup_records = sum(len(r) - 1 for r in records_of.values())
            print(
                f"  org: {seeded_n:,} records, {len(by_email):,} addresses; the {need:,} "
                f"unsubscribed addresses have {dup_records:,} extra records"
            )
        else:
            while len(ids) < need:
                chunk = min(need - len(ids), 10_000)
                seeded = control(
                    info, "POST", "seed", {"contacts": chunk // 2, "leads": chunk - chunk // 2}
                )
                ids += seeded["contact_ids"] + seeded["lead_ids"]
            emails = [f"b{i}@example.com" for i in range(len(ids))]
            records_of = {sid: [sid] for sid in ids}
        ctx = open_context()
        now = ctx.clock()
        rows = [
            PersonInput(i, emails[i], sid, "Contact" if sid.startswith("003") else "Lead")
            for i, sid in enumerate(ids)
        ]
        for i in range(0, len(rows), 1000):
            upsert_chunk(ctx.db, rows[i : i + 1000], now=now)
        worker = Worker(ctx, schedule=False)
        worker.start()
        time.sleep(1.0)  # let the worker get its token

        def unsubscribe(i: int) -> float:
            with ctx.db.transaction() as s:
                optouts.unsubscribe_email(
                    s, emails[i], source=Source.API, actor="bench", now=ctx.clock()
                )
            return time.time()

        def wait_drained(timeout: float = 300) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with ctx.db.engine.connect() as c:
                    open_ = c.execute(
                        text("SELECT count(*) FROM outbox WHERE state IN ('pending','in_flight')")
                    ).scalar_one()
                if open_ == 0:
                    return
                time.sleep(0.2)
            raise RuntimeError("outbox did not drain")

        # steady rate
        returned: dict[str, float] = {}
        start = time.monotonic()
        for k in range(steady_n):
            target = start + k / args.rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            returned[ids[k]] = unsubscribe(k)
        wait_drained()
        # burst: recorded as `optsync unsubscribe --file` records a list (the set-based
        # bulk service, one transaction per 1,000 addresses)
        before = control(info, "GET", "counters")["total"]
        burst_returned: dict[str, float] = {}
        t0 = time.monotonic()
        burst = range(steady_n, steady_n + args.burst)
        unsubscribe_many(
            ctx.db,
            [emails[k] for k in burst],
            source=Source.CSV,
            actor="bench",
            now=ctx.clock(),
        )
        committed = time.time()
        for k in burst:
            burst_returned[ids[k]] = committed
        enqueue_s = time.monotonic() - t0
        wait_drained()
        burst_calls = control(info, "GET", "counters")["total"] - before
        worker.stop()
        ctx.close()
        set_at = stamps(info)

        def done_at(sid: str) -> float | None:
            """When the address's last record was set (None: one was never set)."""
            times = [set_at.get(r) for r in records_of[sid]]
            return None if None in times else max(t for t in times if t is not None)

        finished = {sid: done_at(sid) for sid in list(returned) + list(burst_returned)}
        missing = [i for i, at in finished.items() if at is None]
        steady = [at - returned[i] for i in returned if (at := finished[i]) is not None]
        burst = [at - burst_returned[i] for i in burst_returned if (at := finished[i]) is not None]
        print(
            f"{label}: emulator latency {args.latency_ms} ms per API call; "
            f"{len(missing)} unsubscribes not set on every record of their address"
            + (f"; {args.duplicates:.0%} duplicate-address org" if args.duplicates else "")
        )
        print(
            f"  steady {args.rate}/s for {args.seconds} s ({steady_n} unsubscribes): "
            f"p50 {statistics.median(steady):.3f} s, p99 {pct(steady, 99):.3f} s, "
            f"max {max(steady):.3f} s"
        )
        print(
            f"  burst of {args.burst:,} (CLI file path; recorded in "
            f"{enqueue_s:.1f} s, "
            f"{args.burst / enqueue_s:,.0f}/s): p50 {statistics.median(burst):.3f} s, "
            f"p99 {pct(burst, 99):.3f} s, max {max(burst):.3f} s"
        )
        print(
            f"  burst API calls: {burst_calls} = {burst_calls * 1000 / args.burst:.1f} per 1,000"
            f" pushes (naive per-record REST update: 1,000 per 1,000; nightly-only sync: "
            f"latency up to 24 h)"
        )
    finally:
        emulator.terminate()
        emulator.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        help="share of seeded records carrying another record's address (e.g. 0.1)",
    )
    parser.add_argument("--postgres-url", default=None, help="run on PostgreSQL instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        if args.postgres_url:
            with scratch_database(args.postgres_url, prefix="optsync_bench") as url:
                run("PostgreSQL", url, args, tmp)
        else:
            run("SQLite", f"sqlite:///{tmp / 'bench.db'}", args, tmp)


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"thread error: {a.exc_value!r}", file=sys.stderr)
    main()
