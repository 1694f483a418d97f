"""Benchmark: `optsync persons import` of a generated CSV, on SQLite and PostgreSQL.

Usage:
    python bench/import_bench.py [--rows 100000] [--postgres-url postgresql://postgres@127.0.0.1/test]

Generates a CSV (every second row linked to a Salesforce Contact or Lead, plus a few bad
rows), runs the real command in a subprocess against a fresh database, and prints rows per
second for the first import and for a re-import (which must change nothing).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError

from optsync.domain.ids import make_id
from optsync.store.scratch import scratch_database

BAD_EVERY = 10_000


def generate(path: Path, rows: int) -> int:
    bad = 0
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "salesforce_id", "first_name", "last_name"])
        for i in range(rows):
            if i and i % BAD_EVERY == 0:
                w.writerow([f"broken-{i}", "", "", ""])
                bad += 1
                continue
            sf_id = ""
            if i % 2 == 0:
                sf_id = make_id("003" if i % 4 == 0 else "00Q", i)
            w.writerow([f"person{i}@example.com", sf_id, f"First{i}", f"Last{i}"])
    return bad


def run_import(env: dict[str, str], csv_path: Path) -> tuple[float, int]:
    optsync = [sys.executable, "-m", "optsync.cli.main"]
    subprocess.run([*optsync, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [*optsync, "persons", "import", str(csv_path)], env=env, capture_output=True, text=True
    )
    return time.perf_counter() - started, proc.returncode


def bench(label: str, url: str, csv_path: Path, rows: int, data_dir: Path) -> None:
    env = {
        **os.environ,
        "OPTSYNC_DATABASE_URL": url,
        "OPTSYNC_DATA_DIR": str(data_dir),
        "COLUMNS": "100",
    }
    first, code1 = run_import(env, csv_path)
    again, code2 = run_import(env, csv_path)
    print(
        f"{label:<11} first import: {rows:,} rows in {first:6.2f} s = {rows / first:8,.0f} rows/s"
        f" (exit {code1}: bad rows reported)"
    )
    print(
        f"{label:<11} re-import:    {rows:,} rows in {again:6.2f} s = {rows / again:8,.0f} rows/s"
        f" (exit {code2}; changes nothing)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "OPTSYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        csv_path = tmpdir / "persons.csv"
        bad = generate(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({bad} malformed) -> includes process start-up")
        bench("SQLite", f"sqlite:///{tmpdir / 'bench.db'}", csv_path, args.rows, tmpdir / "d1")
        try:
            with scratch_database(args.postgres_url, prefix="optsync_bench") as url:
                bench("PostgreSQL", url, csv_path, args.rows, tmpdir / "d2")
        except OperationalError as exc:  # PostgreSQL is optional for this script
            print(f"PostgreSQL  skipped: {exc.__class__.__name__}")


if __name__ == "__main__":
    main()
