"""The emulator's Bulk 2.0 update in-process: the nightly bench's push, without HTTP or noise.

Seeds an in-memory org (half Contacts, half Leads; capture paused, as ``seed`` does),
then runs Bulk ingest ``update`` jobs setting ``HasOptedOutOfEmail`` on 7.5 % of each
object (the nightly bench's push: 75,000 records at 1,000,000), alternating true and false
so every run changes every value, and prints wall and CPU seconds per run. CPU time is
what to compare on a shared machine: other processes stretch the wall time, not it.

Run: ``python bench/bulk_update_bench.py [--records N] [--runs N] [--cdc]``
(``--cdc``: Contact and Lead selected for Change Data Capture, as ``optsync emulator``
starts; by default none, as the nightly bench's ``--without-cdc`` emulator).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from optsync.emulator.bulk import JobManager
from optsync.emulator.faults import FaultSettings, Governor
from optsync.emulator.ids import new_id
from optsync.emulator.pubsub.bus import EventBus
from optsync.emulator.pubsub.capture import capture_paused
from optsync.emulator.schema import KEY_PREFIX
from optsync.emulator.store import OrgStore

MOD = 40
PUSHED = range(6, 9)  # i % 40 in 6..8: 7.5 %, as the nightly bench pushes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cdc", action="store_true")
    args = parser.parse_args()
    n: int = args.records
    store = OrgStore(":memory:")
    EventBus(store, cdc=args.cdc)
    wall, cpu = time.perf_counter(), time.process_time()
    with capture_paused():
        store.seed(n // 2, n - n // 2, 0.0, 0.0)
    print(
        f"seed {n:,} records: wall {time.perf_counter() - wall:.2f} s, "
        f"CPU {time.process_time() - cpu:.2f} s (CDC {'on' if args.cdc else 'off'})"
    )
    with tempfile.TemporaryDirectory(prefix="optsync-bulk-bench-") as tmp:
        jobs = JobManager(store, Governor(FaultSettings()), Path(tmp))
        try:
            uploads = {
                (obj, value): "Id,HasOptedOutOfEmail\n"
                + "".join(
                    f"{new_id(KEY_PREFIX[obj], i + 1)},{value}\n"
                    for i in range(n // 2)
                    if i % MOD in PUSHED
                )
                for obj in ("Contact", "Lead")
                for value in ("true", "false")
            }
            rows = sum(u.count("\n") - 1 for (_, v), u in uploads.items() if v == "true")
            cpus: list[float] = []
            for run in range(args.runs):
                value = "true" if run % 2 == 0 else "false"
                wall, cpu = time.perf_counter(), time.process_time()
                for obj in ("Contact", "Lead"):
                    job = jobs.create_ingest({"object": obj, "operation": "update"}, "60.0")
                    job.path("upload.csv").write_text(uploads[(obj, value)])
                    job.uploads = 1
                    jobs._process_ingest(job)  # what the worker thread runs, timed alone
                    if job.failed:
                        raise SystemExit(f"{job.failed} rows failed")
                cpus.append(time.process_time() - cpu)
                print(
                    f"  update {rows:,} records: wall {time.perf_counter() - wall:.2f} s, "
                    f"CPU {cpus[-1]:.2f} s"
                )
            print(f"best CPU {min(cpus):.2f} s = {min(cpus) / rows * 1e6:.1f} us per record")
        finally:
            jobs.close()
            store.close()


if __name__ == "__main__":
    main()
