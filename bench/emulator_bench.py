"""Emulator throughput: seeding, a Bulk 2.0 query, concurrent collections under latency.

Prints figures only (no pass/fail): seeding records/s for 1,000,000 records, bulk-query
rows/s for 250,000 rows fetched with simple-salesforce's ``bulk2`` client, composite
calls/s for concurrent clients with 100 ms latency, and the process's peak RSS.

Run: ``.venv/bin/python bench/emulator_bench.py [--records N] [--query-rows N]``
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

from optsync.emulator import EmulatorOptions, run_emulator


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--query-rows", type=int, default=250_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--memory", action="store_true", default=False,
                        help="keep the org in memory instead of a SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, run_emulator(EmulatorOptions(
            data_dir=Path(tmp), port=0, memory=args.memory)) as emu:
        print(f"emulator at {emu.instance_url} ({'memory' if args.memory else 'SQLite file'})")
        contacts = args.records // 2
        t0 = time.perf_counter()
        emu.seed(contacts=contacts, leads=args.records - contacts, opted_out_fraction=0.1,
                 sales_opted_out_fraction=0.05)
        seed_s = time.perf_counter() - t0
        print(f"seed      {args.records:>9,} records in {seed_s:6.2f} s = "
              f"{args.records / seed_s:>10,.0f} records/s   (peak RSS {_rss_mb():,.0f} MB)")

        sf = emu.salesforce()
        t0 = time.perf_counter()
        rows = 0
        sets = 0
        for chunk in sf.bulk2.Contact.query(
                "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact "
                f"ORDER BY Email LIMIT {args.query_rows}", max_records=50_000, wait=0):
            rows += chunk.count("\n") - 1
            sets += 1
        query_s = time.perf_counter() - t0
        print(f"bulk query {rows:>8,} rows    in {query_s:6.2f} s = {rows / query_s:>10,.0f} "
              f"rows/s      ({sets} result sets; peak RSS {_rss_mb():,.0f} MB)")

        # Many clients pushing collections of 200 through 100 ms latency: the emulator
        # must add little beyond the latency itself.
        emu.settings(latency_ms=100)
        ids = [r["Id"] for r in sf.query(
            "SELECT Id FROM Contact ORDER BY Id LIMIT 200")["records"]]
        payload = {"allOrNone": False, "records": [
            {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True}
            for i in ids]}
        clients = [emu.salesforce() for _ in range(args.clients)]

        def push(client: object) -> None:
            for _ in range(args.calls):
                client.restful("composite/sobjects", method="PATCH",  # type: ignore[attr-defined]
                               json=payload, timeout=60)

        threads = [threading.Thread(target=push, args=(c,)) for c in clients]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        push_s = time.perf_counter() - t0
        calls = args.clients * args.calls
        ideal = args.calls * 0.1
        print(f"composite {calls:>9,} calls   in {push_s:6.2f} s = {calls / push_s:>10,.1f} "
              f"calls/s     ({args.clients} clients x 200 records, 100 ms latency; "
              f"latency-only floor {ideal:.1f} s)")
        print(f"peak RSS  {_rss_mb():,.0f} MB (emulator and benchmark client in one process)")


if __name__ == "__main__":
    main()
