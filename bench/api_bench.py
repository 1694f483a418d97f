"""Benchmark: the web app under uvicorn, on SQLite and (optionally) PostgreSQL.

Usage:
    python bench/api_bench.py [--persons 20000] [--one-click 3000] [--concurrency 16]
                              [--postgres-url postgresql://postgres@127.0.0.1/test]

For each database: a fresh migrated database is seeded (persons, 10% unsubscribed), the
app is started with uvicorn in a child process on a free loopback port (so the server has
its own interpreter and GIL), and this process measures over real HTTP:

* RFC 8058 one-click POSTs, each for a distinct person, from ``--concurrency`` concurrent
  asyncio clients (httpx): requests/s and p50/p99 latency;
* suppression checks of 1,000 and of 10,000 addresses (10% of them suppressed), one at a
  time: requests/s and p50/p99 latency.

Targets (issue 6): >= 500 one-click POSTs/s with p99 < 50 ms; a 10,000-address
suppression check < 200 ms. The load and CPU count are printed with the figures, since
client and server share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.accounts import create_token
from optsync.services.bulk_unsubscribes import unsubscribe_many
from optsync.services.links import UnsubscribeLinks
from optsync.services.persons import PersonInput, upsert_chunk
from optsync.store.db import Database
from optsync.store.scratch import scratch_database

SECRET = "bench-secret"
WARMUP = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, data_dir: str, port: int) -> None:
    """The child process: the real app factory under uvicorn, access log off."""
    import uvicorn

    from optsync.bootstrap import Context
    from optsync.settings import load_settings
    from optsync.web.app import create_app

    settings = load_settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
    )
    ctx = Context(settings=settings, db=Database(url, pool_size=20, max_overflow=20))
    uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def seed(db: Database, persons: int) -> tuple[list[int], str]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [
        PersonInput(i, f"person{i}@example.com")  # every third person is not linked
        if i % 3 == 0
        else PersonInput(
            i,
            f"person{i}@example.com",
            make_id("003" if i % 2 else "00Q", i + 1),
            "Contact" if i % 2 else "Lead",
        )
        for i in range(persons)
    ]
    for start in range(0, persons, 1000):
        upsert_chunk(db, rows[start : start + 1000], now=now)
    unsubscribe_many(
        db,
        [f"person{i}@example.com" for i in range(0, persons, 10)],
        source=Source.API,
        actor="bench",
        now=now,
    )
    with db.transaction() as s:
        token = create_token(s, "bench", is_admin=False, now=now)
        ids = list(s.scalars(text("SELECT id FROM persons WHERE NOT unsubscribed ORDER BY id")))
    return ids, token


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), to state the server's cost per
    request independently of what else the machine is doing."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(label: str, latencies: list[float], elapsed: float, cpu: float | None) -> None:
    per_request = f"   server CPU {cpu / len(latencies) * 1000:5.2f} ms/req" if cpu else ""
    print(
        f"  {label:<30} {len(latencies) / elapsed:6.0f} req/s   "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms   "
        f"p99 {percentile(latencies, 99) * 1000:6.1f} ms   (n={len(latencies)}){per_request}"
    )


async def measure_one_click(
    base: str, paths: list[str], concurrency: int, server_pid: int | None
) -> None:
    warm, measured = paths[:WARMUP], paths[WARMUP:]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def run(batch: list[str]) -> tuple[list[float], int, float]:
            queue: asyncio.Queue[str] = asyncio.Queue()
            for path in batch:
                queue.put_nowait(path)
            latencies: list[float] = []
            failures = 0

            async def worker() -> None:
                nonlocal failures
                while not queue.empty():
                    path = queue.get_nowait()
                    started = time.perf_counter()
                    r = await client.post(
                        path,
                        content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                    latencies.append(time.perf_counter() - started)
                    failures += r.status_code != 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, failures, time.perf_counter() - started

        await run(warm)
        cpu_before = cpu_seconds(server_pid)
        latencies, failures, elapsed = await run(measured)
        cpu_after = cpu_seconds(server_pid)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    report(f"one-click POST (c={concurrency})", latencies, elapsed, cpu)
    if failures:
        print(f"  !! {failures} one-click POSTs did not answer 200")


def measure_suppression(
    base: str, token: str, persons: int, size: int, runs: int, server_pid: int | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        latencies = []
        started_all = time.perf_counter()
        for run in range(runs + 3):
            offset = (run * size) % max(persons - size, 1)
            emails = [f"Person{offset + i}@Example.com" for i in range(size)]
            started = time.perf_counter()
            r = client.post("/api/v1/suppression/check", json={"emails": emails})
            elapsed = time.perf_counter() - started
            r.raise_for_status()
            if run == 0:
                assert len(r.json()["suppressed"]) >= size // 10 - 1, r.json()
            if run >= 3:  # the first few warm caches and the connection
                latencies.append(elapsed)
            else:
                started_all = time.perf_counter()
                cpu_before = cpu_seconds(server_pid)
        total = time.perf_counter() - started_all
        cpu_after = cpu_seconds(server_pid)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    report(f"suppression check of {size:,}", latencies, total, cpu)


def wait_until_up(base: str, proc: mp.process.BaseProcess) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise SystemExit("the server process died; see its output above")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become ready within 180 s")


def bench(label: str, url: str, args: argparse.Namespace, data_dir: Path) -> None:
    db = Database(url)
    db.upgrade()
    started = time.perf_counter()
    ids, token = seed(db, args.persons)
    assert len(ids) == args.persons - len(range(0, args.persons, 10)), "seeding lost rows"
    print(f"{label}: seeded {args.persons:,} persons in {time.perf_counter() - started:.1f} s")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    links = UnsubscribeLinks(SECRET, base)
    paths = [f"/u/{links.token(pid)}" for pid in ids[: args.one_click + WARMUP]]
    proc = mp.get_context("spawn").Process(
        target=serve, args=(url, str(data_dir), port), daemon=True
    )
    proc.start()
    try:
        wait_until_up(base, proc)
        print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        asyncio.run(measure_one_click(base, paths, args.concurrency, proc.pid))
        for size in (1000, 10_000):
            measure_suppression(base, token, args.persons, size, args.suppression_runs, proc.pid)
        print(f"  load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        proc.terminate()
        proc.join(10)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--one-click", type=int, default=3000, help="measured one-click POSTs")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--suppression-runs", type=int, default=30)
    parser.add_argument("--postgres-url", default=os.environ.get("OPTSYNC_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if args.one_click + WARMUP > args.persons * 0.9:
        parser.error("--persons must exceed --one-click by enough distinct persons")
    print(f"CPUs: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        bench("SQLite", f"sqlite:///{data_dir / 'bench.db'}", args, data_dir)
        if args.postgres_url:
            with scratch_database(args.postgres_url, prefix="optsync_bench") as url:
                bench("PostgreSQL", url, args, data_dir)


if __name__ == "__main__":
    main()
