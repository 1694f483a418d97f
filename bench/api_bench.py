"""Benchmark: the web app as an operator runs it, on SQLite and (optionally) PostgreSQL.

Usage:
    python bench/api_bench.py [--persons 20000] [--one-click 6000] [--concurrency 16]
                              [--rate 500] [--connections 64] [--workers 1]
                              [--postgres-url postgresql://postgres@127.0.0.1/test]

For each database: a fresh migrated database is seeded (persons, 10% unsubscribed), then
``optsync serve --workers N`` is started as a child process on a free loopback port and
this process measures over real HTTP:

* RFC 8058 one-click POSTs, each for a distinct person, exactly as a mailbox provider
  sends them: first in a **closed loop** (``--concurrency`` connections, each sending
  its next POST when the last is answered: the server's capacity), then in an **open
  loop** (``--rate`` POSTs per second on a fixed schedule whatever the answers, as
  providers send them; latency counts from the scheduled moment). Afterwards the ledger
  must hold exactly one entry and one push per POSTed person;
* suppression checks of 1,000 and of 10,000 addresses (10% of them suppressed), one at a
  time: requests/s and p50/p99 latency.

Targets (issue 6): >= 500 one-click POSTs/s with p99 < 50 ms; a 10,000-address
suppression check < 200 ms. Client, server and database share the machine, so the load
generator is a lean keep-alive HTTP/1.1 loop, and the server's own CPU per request is
printed next to each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
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


def start_server(url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``optsync serve`` exactly as an operator runs it, configured by environment."""
    env = {
        **os.environ,
        "OPTSYNC_DATA_DIR": str(data_dir),
        "OPTSYNC_DATABASE_URL": url,
        "OPTSYNC_SECRET_KEY": SECRET,
        "OPTSYNC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    command = [sys.executable, "-m", "optsync.cli.main", "serve", "--port", str(port)]
    log = (data_dir / f"serve-{port}.log").open("wb")  # the access log: a line per request
    return subprocess.Popen(
        [*command, "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT
    )


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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes), from Linux /proc."""
    pids = [pid]
    for tid in Path(f"/proc/{pid}/task").iterdir():
        children = (tid / "children").read_text().split()
        for child in children:
            pids.extend(process_tree(int(child)))
    return pids


def server_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of the server's processes, to state its cost per request
    independently of what else the machine is doing."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(label: str, latencies: list[float], elapsed: float, cpu: float) -> None:
    per_request = f"   server CPU {cpu / len(latencies) * 1000:5.2f} ms/req"
    print(
        f"  {label:<38} {len(latencies) / elapsed:6.0f} req/s   "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms   "
        f"p99 {percentile(latencies, 99) * 1000:6.1f} ms   (n={len(latencies)}){per_request}"
    )


class Connection:
    """A keep-alive HTTP/1.1 connection that POSTs prebuilt requests and reads the status
    and body. The load generator shares the machine with the server, so it is kept lean:
    httpx spends about a millisecond of CPU per request, which on two cores is CPU the
    server would otherwise have."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def one_click_request(host: str, path: str) -> bytes:
    """Exactly what RFC 8058 says a mailbox provider sends."""
    body = b"List-Unsubscribe=One-Click"
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: api-bench\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def closed_loop(
    port: int, requests: list[bytes], concurrency: int
) -> tuple[list[float], int, float]:
    """``concurrency`` connections, each sending its next request as soon as the last
    one is answered: the server's capacity."""
    connections = [await Connection.open("127.0.0.1", port) for _ in range(concurrency)]
    pending = iter(requests)
    latencies: list[float] = []
    failures = 0

    async def drive(conn: Connection) -> None:
        nonlocal failures
        for request in pending:
            started = time.perf_counter()
            status = await conn.send(request)
            latencies.append(time.perf_counter() - started)
            failures += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(drive(conn) for conn in connections))
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return latencies, failures, elapsed


async def open_loop(
    port: int, requests: list[bytes], rate: float, connections: int
) -> tuple[list[float], int, float]:
    """Requests sent on a fixed schedule of ``rate`` per second whatever the answers,
    as mailbox providers do; latency counts from the scheduled moment, so a request that
    had to wait for a free connection is charged for the wait (no coordinated omission)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open("127.0.0.1", port))
    latencies: list[float] = []
    failures = 0

    async def send(request: bytes, due: float) -> None:
        nonlocal failures
        conn = await pool.get()
        try:
            status = await conn.send(request)
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)
        failures += status != 200

    tasks = []
    started = time.perf_counter()
    for n, request in enumerate(requests):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, failures, elapsed


async def measure_one_click(
    port: int, paths: list[str], args: argparse.Namespace, server_pids: list[int]
) -> None:
    host = f"127.0.0.1:{port}"
    requests = [one_click_request(host, path) for path in paths]
    warm, rest = requests[:WARMUP], requests[WARMUP:]
    half = len(rest) // 2
    await closed_loop(port, warm, args.concurrency)
    for label, run in (
        (
            f"one-click POST, closed loop c={args.concurrency}",
            lambda: closed_loop(port, rest[:half], args.concurrency),
        ),
        (
            f"one-click POST, open loop {args.rate:.0f}/s",
            lambda: open_loop(port, rest[half:], args.rate, args.connections),
        ),
    ):
        cpu_before = server_cpu(server_pids)
        latencies, failures, elapsed = await run()
        cpu_after = server_cpu(server_pids)
        report(label, latencies, elapsed, cpu_after - cpu_before)
        if failures:
            print(f"  !! {failures} one-click POSTs did not answer 200")


def measure_suppression(
    base: str, token: str, persons: int, size: int, runs: int, server_pids: list[int]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        latencies = []
        started_all = time.perf_counter()
        cpu_before = server_cpu(server_pids)
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
                cpu_before = server_cpu(server_pids)
        total = time.perf_counter() - started_all
        cpu_after = server_cpu(server_pids)
    report(f"suppression check of {size:,}", latencies, total, cpu_after - cpu_before)


def wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server process died; see serve-*.log in the data dir")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become ready within 180 s")


def ledger_check(db: Database, expected: int) -> None:
    """Every measured POST was a distinct person: each must have exactly one ledger entry
    and one push, or the figures are of a server that loses or doubles work."""
    with db.transaction() as s:
        entries = s.scalar(text("SELECT count(*) FROM ledger WHERE source = 'one_click'"))
        pushes = s.scalar(text("SELECT count(*) FROM outbox"))
        seeded = s.scalar(text("SELECT count(*) FROM ledger WHERE source = 'api'"))
    if entries != expected or pushes != expected + seeded:
        raise SystemExit(f"ledger check failed: {entries} one-click entries for {expected}")


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
    proc = start_server(url, data_dir, port, args.workers)
    try:
        wait_until_up(base, proc)
        pids = process_tree(proc.pid)
        print(
            f"  optsync serve --workers {args.workers}; load average before: "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
        asyncio.run(measure_one_click(port, paths, args, pids))
        ledger_check(db, len(paths))
        for size in (1000, 10_000):
            measure_suppression(base, token, args.persons, size, args.suppression_runs, pids)
        print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        proc.terminate()
        proc.wait(30)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument(
        "--one-click", type=int, default=6000, help="measured one-click POSTs (half each loop)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--rate", type=float, default=500, help="open-loop POSTs per second")
    parser.add_argument("--connections", type=int, default=64, help="open-loop connections")
    parser.add_argument("--workers", type=int, default=1, help="optsync serve --workers")
    parser.add_argument("--suppression-runs", type=int, default=30)
    parser.add_argument("--postgres-url", default=None, help="also run on PostgreSQL")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if args.one_click + WARMUP > args.persons * 0.9:
        parser.error("--persons must exceed --one-click by enough distinct persons")
    print(f"CPUs: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if not args.skip_sqlite:
            bench("SQLite", f"sqlite:///{data_dir / 'bench.db'}", args, data_dir)
        if args.postgres_url:
            with scratch_database(args.postgres_url, prefix="optsync_bench") as url:
                bench("PostgreSQL", url, args, data_dir)


if __name__ == "__main__":
    main()
