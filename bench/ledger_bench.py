"""Benchmark: the one write path's ledger rows, as a nightly pull writes them.

Usage:
    python bench/ledger_bench.py [--rows 40000] [--chunk 2000]
                                 [--postgres-url postgresql+psycopg://postgres@127.0.0.1/test]

A fresh migrated database (a SQLite file, and a scratch PostgreSQL database when given)
gets ``--rows`` persons; their ledger rows (a Salesforce pull's: the same kind, source,
actor and reason, evidence naming the record) are written ``--chunk`` at a time, each
chunk in its own transaction, through ``store.optouts._insert_ledger`` (what
``store.optouts.unsubscribe`` calls). Prints the time and microseconds a row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from optsync.store import optouts
from optsync.store.db import Database
from optsync.store.models import Person
from optsync.store.scratch import scratch_database


def measure(url: str, rows: int, chunk: int) -> str:
    db = Database(url)
    db.upgrade()
    now = datetime.now(UTC)
    with db.transaction() as s:
        ids = list(
            s.scalars(
                insert(Person).returning(Person.id),
                [
                    {
                        "email": f"p{i}@example.com",
                        "unsubscribed": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(rows)
                ],
            )
        )
    entries = [
        {
            "person_id": pid,
            "kind": "unsubscribe",
            "source": "salesforce",
            "actor": "sync",
            "reason": "Salesforce has HasOptedOutOfEmail set",
            "evidence": {"sync_run": 7, "field": "HasOptedOutOfEmail", "record_id": f"{pid:018d}"},
            "created_at": now,
        }
        for pid in ids
    ]
    started = time.perf_counter()
    for start in range(0, rows, chunk):
        with db.transaction() as s:
            written = list(optouts._insert_ledger(s, entries[start : start + chunk]))
            assert len(written) == len(entries[start : start + chunk])
    took = time.perf_counter() - started
    name = db.engine.dialect.name
    db.dispose()
    return (
        f"{name:10s} {rows:,} ledger rows in chunks of {chunk:,}: {took:.2f} s "
        f"({took / rows * 1e6:.0f} µs a row)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--chunk", type=int, default=2_000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optsync-ledger-") as tmp:
        print(measure(f"sqlite:///{Path(tmp) / 'ledger.db'}", args.rows, args.chunk))
    if args.postgres_url:
        with scratch_database(args.postgres_url, prefix="optsync_ledger") as url:
            print(measure(url, args.rows, args.chunk))


if __name__ == "__main__":
    main()
