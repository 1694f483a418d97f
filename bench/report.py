"""Run every benchmark and write docs/benchmarks.md (what `make bench` does).

Each benchmark prints its own figures; this script runs it with the exact command shown
in the report (on SQLite, and on PostgreSQL when ``OPTSYNC_TEST_POSTGRES_URL`` is set),
and puts its output next to the target it answers to and the naive approach it replaces.

    python bench/report.py [--only push,import] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("OPTSYNC_TEST_POSTGRES_URL", "")

# name, title, target, naive approach, commands (SQLite, then PostgreSQL ones)
BENCHES = [
    ("import", "CSV import of 100,000 persons",
     "issue 2: measure rows/s on SQLite and PostgreSQL",
     "row-by-row ORM inserts (measured first: ~1,500 rows/s on PostgreSQL)",
     [["bench/import_bench.py", "--postgres-url", PG] if PG else ["bench/import_bench.py"]]),
    ("emulator", "The Salesforce emulator",
     "seeding 1,000,000 records and a Bulk query of 250,000 well under a minute each",
     "—", [["bench/emulator_bench.py"]]),
    ("push", "Real-time push: unsubscribe → field set in Salesforce (100 ms per API call)",
     "p50 < 0.5 s, p99 < 2 s at 50/s; ≤ 6 API calls per 1,000 pushes in a 10,000 burst",
     "per-record REST update: 1,000 calls per 1,000; nightly-only sync: up to 24 h",
     [["bench/push_bench.py"]] + ([["bench/push_bench.py", "--postgres-url", PG]] if PG else [])),
    ("api", "Public one-click endpoint and suppression checks",
     "≥ 500 one-click POSTs/s with p99 < 50 ms; 10,000-email suppression check < 200 ms",
     "one transaction per POST through the ORM (optsync before the group commit, same "
     "machine): 266 POSTs/s, p99 135 ms on SQLite; 202/s, p99 210 ms on PostgreSQL",
     [["bench/api_bench.py", "--postgres-url", PG] if PG else ["bench/api_bench.py"]]),
    ("nightly", "Nightly sync at 1,000,000 persons (150,000 opt-outs each side, half shared)",
     "first run < 3 min and < 500 MB, < 50 API calls; second run zero changes",
     "per-record REST updates: one call per pushed record",
     [["bench/nightly_bench.py"]] + ([["bench/nightly_bench.py", "--postgres-url", PG]]
                                     if PG else [])),
]


def run(cmd: list[str]) -> tuple[str, float, int]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True)
    out = proc.stdout.strip()
    if proc.returncode:
        out += f"\n(exit {proc.returncode})\n" + proc.stderr.strip()[-2000:]
    return out, time.perf_counter() - started, proc.returncode


def soak_section() -> list[str]:
    """The last long soak (`make soak`), from the summary it saved in docs/."""
    path = ROOT / "docs" / "soak-summary.json"
    if not path.exists():
        return []
    summary = json.loads(path.read_text())
    return [
        "## Soak (fault, load and concurrency)", "",
        "`make soak` (`OPTSYNC_SOAK_SECONDS=1800 pytest tests/soak -s`, PostgreSQL): "
        f"{summary['duration_s'] / 60:.0f} minutes with {summary['workers']} workers and "
        f"{summary['web_processes']} web processes; every invariant held. CI runs the same "
        "scenario for 40 seconds on every change.", "",
        "```json", json.dumps(summary, indent=2), "```", "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python bench/report.py`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC,",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Each section shows the exact command and its output.",
        "",
    ]
    failures = 0
    for name, title, target, naive, commands in BENCHES:
        if only and name not in only:
            continue
        if not (ROOT / commands[0][0]).exists():
            continue
        lines += [f"## {title}", "", f"Target: {target}.  ", f"Naive approach: {naive}.", ""]
        for cmd in commands:
            shown = " ".join(["python", *cmd]).replace(PG, "$OPTSYNC_TEST_POSTGRES_URL") if PG \
                else " ".join(["python", *cmd])
            print(f"== {shown}", flush=True)
            out, seconds, code = run(cmd)
            failures += code != 0
            print(out, flush=True)
            lines += [f"`{shown}` ({seconds:.0f} s)", "", "```", out, "```", ""]
    lines += soak_section()
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
