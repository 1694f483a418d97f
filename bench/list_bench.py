"""Benchmark: the Unsubscribes list (tab, API, CSV export) on SQLite and PostgreSQL.

Usage:
    python bench/list_bench.py [--rows 100000] [--postgres-url postgresql://postgres@127.0.0.1/test]

Fills a fresh database with ``--rows`` unsubscribed persons, each with one push (half
sent, a sixth each failed, not linked and pending), then times what the pages and the API
ask of the one query builder (``optsync.services.unsubscribe_list``): the first page, a
page at 90 % through a cursor, the sorts by address (first page and half way, both ways),
push-state filters, a search, the counts and the streamed CSV export of every row. Best
of three, in milliseconds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from optsync.services import unsubscribe_list as ul
from optsync.store.db import Database
from optsync.store.models import OutboxPush, Person
from optsync.store.scratch import scratch_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATES = ("sent", "sent", "sent", "failed", "not_linked", "pending")
KEY = "bench"
CHUNK = 10_000


def fill(db: Database, rows: int) -> None:
    with db.transaction() as s:
        for start in range(0, rows, CHUNK):
            span = range(start, min(rows, start + CHUNK))
            s.execute(
                insert(Person.__table__),  # type: ignore[arg-type]
                [
                    {
                        "id": i + 1,
                        "email": f"p{i:07d}@example.com",
                        "unsubscribed": True,
                        "unsubscribed_at": T0 + timedelta(seconds=i),
                        "unsubscribe_source": "csv" if i % 3 else "page",
                        "created_at": T0,
                        "updated_at": T0,
                    }
                    for i in span
                ],
            )
            s.execute(
                insert(OutboxPush.__table__),  # type: ignore[arg-type]
                [
                    {
                        "person_id": i + 1,
                        "state": STATES[i % 6],
                        "attempts": 1,
                        "next_attempt_at": T0,
                        "created_at": T0,
                        "last_error_code": "INVALID_FIELD" if STATES[i % 6] == "failed" else None,
                    }
                    for i in span
                ],
            )
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def best_ms(fn: Callable[[], Any], reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def run(url: str, rows: int) -> None:
    db = Database(url)
    db.upgrade()
    fill(db, rows)

    def query(**raw: str) -> ul.ListQuery:
        return ul.parse_query(raw, tz="UTC", secret_key=KEY)

    def page(q: ul.ListQuery) -> ul.Page:
        with db.transaction() as s:
            return ul.read_page(s, q, 50, secret_key=KEY)

    def count(q: ul.ListQuery) -> int:
        with db.transaction() as s:
            return ul.count(s, q)

    deep = rows // 10  # newest first: 90 % of the way down
    cursor = ul.encode_cursor(
        ul.Cursor("newest", (T0 + timedelta(seconds=deep)).isoformat(), deep + 1), KEY
    )
    middle = rows // 2  # by address: half way down (the addresses sort as the ids)
    address = f"p{middle - 1:07d}@example.com"
    by_address = {
        sort: ul.encode_cursor(ul.Cursor(sort, address, middle), KEY)
        for sort in ("email", "email_desc")
    }
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("first page (50, newest)", lambda: page(query())),
        ("page at 90 % via cursor", lambda: page(query(cursor=cursor))),
        ("first page, address A to Z", lambda: page(query(sort="email"))),
        ("first page, address Z to A", lambda: page(query(sort="email_desc"))),
        (
            "address A to Z, page at 50 %",
            lambda: page(query(sort="email", cursor=by_address["email"])),
        ),
        (
            "address Z to A, page at 50 %",
            lambda: page(query(sort="email_desc", cursor=by_address["email_desc"])),
        ),
        ("state=failed", lambda: page(query(state="failed"))),
        ("source=page&state=not_linked", lambda: page(query(source="page", state="not_linked"))),
        ("q=p00012 (search)", lambda: page(query(q="p00012"))),
        ("count, no filter", lambda: count(query())),
        ("count, state=failed", lambda: count(query(state="failed"))),
    ]
    print(f"{db.engine.dialect.name}, {rows:,} unsubscribed persons")
    for label, fn in cases:
        print(f"  {label:32s} {best_ms(fn):9.1f} ms")
    export = best_ms(lambda: sum(1 for _ in ul.csv_export(db, query())), reps=1)
    print(f"  {'CSV export, every row':32s} {export:9.1f} ms ({rows / export * 1000:,.0f} rows/s)")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows)
    if args.postgres_url:
        with scratch_database(args.postgres_url, prefix="optsync_list_bench") as url:
            run(url, args.rows)


if __name__ == "__main__":
    main()
