"""Benchmark: what the sync-health banner and ``GET /api/v1/health/sync`` cost.

Usage:
    python bench/health_bench.py [--rows 200000] [--postgres-url postgresql+psycopg://…]

A fresh migrated database (a SQLite file, and PostgreSQL when given; the PostgreSQL
database's public schema is dropped first) gets ``--rows`` persons with one push each:
97 % sent, 1 % pending (queued up to an hour ago, so some are stuck), 1 % failed, 1 % not
linked. Then :func:`optsync.services.health.sync_health` is timed 20 times, each in its
own transaction, as a page view or an API call runs it; no Salesforce call is made.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from optsync.services.health import sync_health
from optsync.store.db import Database
from optsync.store.models import OutboxPush, Person

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
STATES = ["sent"] * 97 + ["pending", "failed", "not_linked"]


def measure(url: str, rows: int) -> str:
    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.upgrade()
    with db.transaction() as s:
        s.execute(
            insert(Person),
            [
                {"email": f"p{i}@example.com", "unsubscribed": True, "created_at": NOW,
                 "updated_at": NOW}
                for i in range(rows)
            ],
        )  # fmt: skip
        s.execute(
            insert(OutboxPush),
            [
                {"person_id": i + 1, "state": STATES[i % 100], "attempts": 1,
                 "next_attempt_at": NOW, "created_at": NOW - timedelta(minutes=i % 60)}
                for i in range(rows)
            ],
        )  # fmt: skip
        if db.dialect == "postgresql":
            s.execute(text("ANALYZE"))
    times = []
    for _ in range(20):
        started = time.perf_counter()
        with db.transaction() as s:
            health = sync_health(s, NOW)
        times.append(time.perf_counter() - started)
    db.engine.dispose()
    f = health.facts
    return (
        f"{db.dialect:<10} outbox {rows:,}: waiting {f.waiting:,}, failed {f.failed_pushes:,}, "
        f"stuck {f.stuck:,} -> p50 {statistics.median(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(measure(f"sqlite:///{Path(tmp) / 'health.db'}", args.rows))
    if args.postgres_url:
        print(measure(args.postgres_url, args.rows))


if __name__ == "__main__":
    main()
