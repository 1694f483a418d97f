"""Benchmark: how fast a Salesforce-side opt-out reaches optsync (the live pull), and
what it costs in API calls.

Usage:
    python bench/realtime_bench.py [--latency-ms 100] [--rate 20] [--seconds 15]
                                   [--burst 10000] [--poll-n 15] [--poll-every 6]
                                   [--poll-interval 60] [--idle-seconds 45]
                                   [--postgres-url postgresql://postgres@127.0.0.1/test]

Runs the emulator as a separate process (``optsync emulator --memory --latency-ms 100``:
every REST call takes at least 100 ms; the Pub/Sub API on its own port), a store (SQLite
file, or a scratch PostgreSQL database) with one person linked to each of the emulator's
Contacts and Leads, Sync to Salesforce on, and a worker in this process (push loop and
live pull, as ``optsync up`` runs it). A Salesforce user (the emulator's control
endpoints, an admin editing records) ticks Email Opt Out:

1. ``cdc`` mode: at a steady rate, then a burst of ``--burst`` records as fast as the
   user's eight sessions can save them; then the worker sits idle for ``--idle-seconds``
   (measured, then scaled to an hour: a bounded sample, stated as such);
2. ``poll`` mode at ``--poll-interval`` (60 s, the default in optsync): ``--poll-n``
   records, one every ``--poll-every`` seconds;
3. the nightly sync, run once after both: it must pull and push nothing.

Latency is from the emulator's commit (the record's ``SystemModstamp``, which is also
the change event's ``commitTimestamp``) to the person's unsubscribe in optsync (its
ledger entry's ``created_at``). API calls are REST calls counted by the emulator
(``/__emulator__/counters``, token requests included) and Pub/Sub RPCs counted at the
client (GetTopic, GetSchema, Subscribe, FetchRequest); Salesforce counts only the former
against the daily API limit, and event deliveries against their own allocation.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from emulator_process import start_emulator
from org_reads import opted_out_stamps
from sqlalchemy import text

from optsync.store.scratch import scratch_database

ROOT = Path(__file__).resolve().parent.parent
FIELD = "HasOptedOutOfEmail"


# -- the emulator (its own process) --------------------------------------------------------


class Org:
    """The control endpoints: the bench's view of the org, and its Salesforce user."""

    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.base = info["instance_url"] + "/__emulator__/"
        self._local = threading.local()

    def _http(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False
            s.verify = self.info["ca_bundle"]
            self._local.s = s
        return s

    def control(self, method: str, path: str, body: object = None) -> Any:
        r = self._http().request(method, self.base + path, json=body, timeout=600)
        r.raise_for_status()
        return r.json() if r.content else {}

    def tick(self, record_id: str) -> None:
        """A Salesforce user ticks Email Opt Out on the record."""
        self.control("PATCH", f"records/{record_id}", {FIELD: True})

    def calls(self) -> Counter[str]:
        data = self.control("GET", "counters")
        out: Counter[str] = Counter(data.get("by_endpoint") or {})
        out["total"] = int(data["total"])
        return out

    def stamps(self) -> dict[str, float]:
        """``SystemModstamp`` (epoch s) of every record with the field set, read with the
        REST API once all measuring is done."""
        return opted_out_stamps(self._http(), self.info, FIELD)


# -- Pub/Sub RPCs, counted at the client ----------------------------------------------------

RPCS: Counter[str] = Counter()


def count_pubsub_rpcs() -> None:
    """Wrap the client's calls so every RPC it makes is counted in ``RPCS``."""
    from optsync.salesforce import pubsub

    unary, init, more = (
        pubsub.PubSubClient._unary,
        pubsub.Stream.__init__,
        pubsub.Stream.request_more,
    )

    def _unary(self: Any, method: Any, request: Any) -> Any:
        RPCS["GetTopic" if isinstance(request, pubsub.pb.TopicRequest) else "GetSchema"] += 1
        return unary(self, method, request)

    def _init(self: Any, *args: Any, **kwargs: Any) -> None:
        RPCS["Subscribe"] += 1
        RPCS["FetchRequest"] += 1
        init(self, *args, **kwargs)

    def _more(self: Any) -> None:
        RPCS["FetchRequest"] += 1
        more(self)

    pubsub.PubSubClient._unary = _unary  # type: ignore[method-assign]
    pubsub.Stream.__init__ = _init  # type: ignore[method-assign]
    pubsub.Stream.request_more = _more  # type: ignore[method-assign]


def metric(counter: Any, **labels: str) -> float:
    return sum(
        s.value
        for m in counter.collect()
        for s in m.samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


# -- helpers --------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {statistics.median(values):.3f} s, p99 {pct(values, 99):.3f} s, "
        f"max {max(values):.3f} s"
    )


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


@contextmanager
def database(pg_admin: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    if pg_admin:
        with scratch_database(pg_admin, prefix="optsync_bench") as url:
            yield "PostgreSQL", url
    else:
        yield "SQLite", f"sqlite:///{tmp / 'realtime.db'}"


def run(label: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    from optsync.cli.emulator import settings_env

    emulator, info = start_emulator(tmp / "emu", args.latency_ms)
    org = Org(info)
    try:
        os.environ.update(
            {
                "OPTSYNC_DATA_DIR": str(tmp / "data"),
                "OPTSYNC_DATABASE_URL": url,
                **settings_env(info),
            }
        )
        count_pubsub_rpcs()
        from optsync.bootstrap import open_context
        from optsync.metrics import LIVE_GAPS, LIVE_POLLS, LIVE_RECONNECTS
        from optsync.salesforce.gateway import build_gateway, connection_in_force
        from optsync.services.persons import PersonInput, upsert_chunk
        from optsync.services.sync_run import run_sync
        from optsync.services.sync_settings import update_settings
        from optsync.store import live_pull as state_store
        from optsync.store.db import Database
        from optsync.worker.runner import Worker

        Database(url).upgrade()
        steady_n = args.rate * args.seconds
        need = steady_n + args.burst + args.poll_n
        ids: list[str] = []
        while len(ids) < need:
            chunk = min(need - len(ids), 10_000)
            seeded = org.control(
                "POST", "seed", {"contacts": chunk // 2, "leads": chunk - chunk // 2}
            )
            ids += seeded["contact_ids"] + seeded["lead_ids"]
        steady_ids = ids[:steady_n]
        burst_ids = ids[steady_n : steady_n + args.burst]
        poll_ids = ids[steady_n + args.burst : need]
        ctx = open_context()
        rows = [
            PersonInput(
                i, f"rt{i}@example.com", sid, "Contact" if sid.startswith("003") else "Lead"
            )
            for i, sid in enumerate(ids)
        ]
        for i in range(0, len(rows), 1000):
            upsert_chunk(ctx.db, rows[i : i + 1000], now=ctx.clock())

        def configure(**changes: object) -> None:
            with ctx.db.transaction() as s:
                update_settings(s, changes, actor="bench", now=ctx.clock())

        def states() -> dict[str, str]:
            with ctx.db.transaction() as s:
                return {st.object: st.status for st in state_store.all_states(s)}

        def applied(records: list[str]) -> dict[str, float]:
            """record id -> epoch s of the unsubscribe's ledger entry, for those applied."""
            wanted = set(records)
            out: dict[str, float] = {}
            with ctx.db.engine.connect() as c:
                for sid, created in c.execute(
                    text(
                        "SELECT p.salesforce_id, l.created_at FROM ledger l JOIN persons p "
                        "ON p.id = l.person_id WHERE l.kind = 'unsubscribe'"
                    )
                ):
                    if sid in wanted:
                        if isinstance(created, str):
                            created = datetime.fromisoformat(created)
                        if created.tzinfo is None:
                            created = created.replace(tzinfo=UTC)
                        out[sid] = created.timestamp()
            return out

        def wait_applied(records: list[str], timeout: float) -> float:
            started = time.monotonic()
            while time.monotonic() - started < timeout:
                if len(applied(records)) == len(records):
                    break
                time.sleep(0.2)
            return time.monotonic() - started

        def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{label}: {what} did not happen within {timeout:.0f} s")
                time.sleep(0.1)

        def steady(records: list[str], every_s: float) -> None:
            start = time.monotonic()
            for k, rid in enumerate(records):
                delay = start + k * every_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                org.tick(rid)

        print(
            f"{label}: emulator latency {args.latency_ms} ms per REST call; {len(ids):,} "
            f"Contacts and Leads, each linked to a subscribed person"
        )
        # -- 1. cdc ------------------------------------------------------------------------
        configure(sync_enabled=True, field="email_opt_out", live_pull="cdc", poll_interval_s=60)
        worker = Worker(ctx, schedule=False)
        worker.start()
        wait_for(lambda: set(states().values()) == {"live"}, 60, "subscribing")
        live_at = time.monotonic()
        before, rpcs_before = org.calls(), RPCS.copy()
        steady(steady_ids, 1 / args.rate)
        wait_applied(steady_ids, 60)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(org.tick, burst_ids))
        ticked_s = time.monotonic() - t0
        waited = wait_applied(burst_ids, 180)
        cdc_calls, cdc_rpcs = org.calls() - before, RPCS - rpcs_before
        cdc_gaps = metric(LIVE_GAPS)
        cdc_reconnects = metric(LIVE_RECONNECTS)
        # idle: nothing changes in Salesforce. A first subscribe (no stored replay id)
        # polls until one window covers the minute it opened (up to two polls a minute
        # after it); the idle sample starts after those.
        time.sleep(max(0.0, live_at + 65 - time.monotonic()))
        before, rpcs_before = org.calls(), RPCS.copy()
        time.sleep(args.idle_seconds)
        idle_calls, idle_rpcs = org.calls() - before, RPCS - rpcs_before
        cdc_applied_steady, cdc_applied_burst = applied(steady_ids), applied(burst_ids)
        # -- 2. poll -----------------------------------------------------------------------
        configure(live_pull="poll", poll_interval_s=args.poll_interval)
        wait_for(lambda: set(states().values()) == {"polling"}, 30, "switching to poll")
        # the first poll after the switch may wait out the interval scheduled in cdc mode;
        # measure steady polling, from the first poll on
        polled = metric(LIVE_POLLS)
        wait_for(lambda: metric(LIVE_POLLS) >= polled + 2, 2 * args.poll_interval + 10, "a poll")
        poll_before, poll_started = org.calls(), time.monotonic()
        steady(poll_ids, args.poll_every)
        wait_applied(poll_ids, 2 * args.poll_interval + 15)
        poll_calls, poll_s = org.calls() - poll_before, time.monotonic() - poll_started
        poll_applied = applied(poll_ids)
        worker.stop()
        # -- 3. the nightly sync after it all --------------------------------------------------
        with build_gateway(connection_in_force(ctx), "job") as gw:
            report = run_sync(ctx.db, gw, clock=ctx.clock)
        ctx.close()
        set_at = org.stamps()

        def latencies(done: dict[str, float]) -> list[float]:
            return [t - set_at[r] for r, t in done.items() if r in set_at]

        steady_l, burst_l = latencies(cdc_applied_steady), latencies(cdc_applied_burst)
        poll_l = latencies(poll_applied)
        print(
            f"  cdc steady {args.rate}/s for {args.seconds} s ({steady_n} opt-outs, "
            f"{len(cdc_applied_steady)} applied): {spread(steady_l)}"
        )
        burst_ok = len(cdc_applied_burst) == len(burst_ids)
        print(
            f"  cdc burst of {args.burst:,} (ticked in {ticked_s:.1f} s, "
            f"{args.burst / ticked_s:,.0f}/s; all applied {waited:.1f} s after the last tick): "
            f"{len(cdc_applied_burst):,} applied, {len(burst_ids) - len(cdc_applied_burst)} "
            f"lost; {spread(burst_l)}"
        )
        print(
            f"  cdc gaps/overflows seen {cdc_gaps:.0f}, streams rebuilt {cdc_reconnects:.0f}; "
            f"burst {'landed completely' if burst_ok else 'INCOMPLETE'}"
        )
        cdc_ok = bool(steady_l) and statistics.median(steady_l) <= 1.0 and pct(steady_l, 99) <= 3
        print(f"  cdc target p50 <= 1 s and p99 <= 3 s (steady): {verdict(cdc_ok)}")
        total_optouts = steady_n + args.burst
        rest_per_1000 = cdc_calls["total"] * 1000 / total_optouts
        rpc_per_1000 = sum(cdc_rpcs.values()) * 1000 / total_optouts
        by_endpoint = {k: v for k, v in cdc_calls.items() if k != "total"}
        print(
            f"  cdc API calls for {total_optouts:,} opt-outs: {cdc_calls['total']} REST "
            f"({rest_per_1000:.1f} per 1,000; {by_endpoint})"
            f", {sum(cdc_rpcs.values())} Pub/Sub RPCs ({rpc_per_1000:.1f} per 1,000; "
            f"{dict(cdc_rpcs)})"
        )
        scale = 3600 / args.idle_seconds
        idle_hour = (idle_calls["total"] + sum(idle_rpcs.values())) * scale
        print(
            f"  cdc idle: {idle_calls['total']} REST calls and {sum(idle_rpcs.values())} "
            f"Pub/Sub RPCs ({dict(idle_calls)}) in {args.idle_seconds:.0f} s measured, "
            f"scaled to an hour: "
            f"{idle_hour:.0f} API calls per hour (target <= 5: {verdict(idle_hour <= 5)}); "
            f"an open stream also gets a keepalive answer every 270 s (13 an hour, no call)"
        )
        print(
            f"  poll every {args.poll_interval} s ({len(poll_ids)} opt-outs, one every "
            f"{args.poll_every} s; {len(poll_applied)} applied): {spread(poll_l)} "
            f"(target p99 <= 90 s: {verdict(bool(poll_l) and pct(poll_l, 99) <= 90)})"
        )
        updated = sum(v for k, v in poll_calls.items() if k.endswith("/updated"))
        reads = poll_calls["total"] - updated
        print(
            f"  poll API calls in {poll_s:.0f} s: {poll_calls['total']} REST "
            f"({updated} sobjects/*/updated = {updated * 3600 / poll_s:.0f} per hour, paid "
            f"idle or not; {reads} reads = {reads * 1000 / max(1, len(poll_applied)):.0f} "
            f"per 1,000 opt-outs at this rate, one per changed object per poll at most)"
        )
        print(
            f"  nightly sync afterwards: status {report['status']}, pulled {report['pulled']}, "
            f"pushed {report['pushed']}, failed {report['failed']}: "
            f"{'changes nothing' if report['pulled'] == report['pushed'] == 0 else 'CHANGED'}"
        )
    finally:
        emulator.terminate()
        emulator.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20, help="cdc steady opt-outs per second")
    parser.add_argument("--seconds", type=int, default=15, help="cdc steady duration")
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--poll-n", type=int, default=15)
    parser.add_argument("--poll-every", type=float, default=6.0)
    parser.add_argument("--poll-interval", type=int, default=60)
    parser.add_argument("--idle-seconds", type=float, default=45.0)
    parser.add_argument("--postgres-url", default=None, help="run on PostgreSQL instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # failures, on stderr
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="optsync-rt-") as tmp_s:
        tmp = Path(tmp_s)
        with database(args.postgres_url, tmp) as (label, url):
            run(label, url, args, tmp)
    print(f"  bench wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"thread error: {a.exc_value!r}", file=sys.stderr)
    main()
