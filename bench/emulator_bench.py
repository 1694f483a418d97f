"""Emulator throughput: seeding, a Bulk 2.0 query, concurrent collections under latency.

Prints figures only (no pass/fail):

* seeding: records/s for 1,000,000 records (``POST /__emulator__/seed``);
* bulk query: rows/s for 250,000 rows fetched with simple-salesforce's ``bulk2`` client
  (job creation, background processing and every result set);
* composite: calls/s for concurrent simple-salesforce clients each sending sObject
  Collections updates of 200 records through 100 ms of emulated latency, with the
  emulator's own CPU time per call (its headroom);
* the emulator process's peak RSS.

The emulator runs as ``optsync emulator --json`` in a child process, as a user would run
it, so its memory and CPU are measured apart from the benchmark's clients.

Run: ``.venv/bin/python bench/emulator_bench.py [--records N] [--duplicate-fraction F]
[--query-rows N] [--file]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from simple_salesforce import Salesforce

_LAUNCH = "import typer; from optsync.cli.emulator import emulator; typer.run(emulator)"


class Child:
    """The emulator process: its connection facts, CPU time and peak memory."""

    def __init__(self, data_dir: Path, memory: bool):
        args = [sys.executable, "-c", _LAUNCH, "--port", "0", "--json"]
        if memory:
            args.append("--memory")
        env = dict(os.environ, OPTSYNC_DATA_DIR=str(data_dir))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.info: dict[str, str] = json.loads(self.proc.stdout.readline())

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
        s.verify = self.info["ca_bundle"]
        return s

    def salesforce(self) -> Salesforce:
        with self.session() as s:
            tok = s.post(
                f"{self.info['login_url']}/services/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self.info["client_id"], self.info["client_secret"]),
                timeout=30,
            ).json()
        return Salesforce(
            instance_url=tok["instance_url"], session_id=tok["access_token"], session=self.session()
        )

    def control(self, method: str, path: str, body: Any = None) -> Any:
        with self.session() as s:
            resp = s.request(method, f"{self.info['control_url']}/{path}", json=body, timeout=600)
        resp.raise_for_status()
        return resp.json()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--duplicate-fraction",
        type=float,
        default=0.0,
        help="share of seeded records carrying another seeded record's address",
    )
    parser.add_argument("--query-rows", type=int, default=250_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument(
        "--file", action="store_true", help="keep the org in its SQLite file instead of in memory"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        child = Child(Path(tmp), memory=not args.file)
        try:
            print(
                f"emulator pid {child.proc.pid} at {child.info['instance_url']} "
                f"({'SQLite file' if args.file else 'in memory'})"
            )
            contacts = args.records // 2
            t0 = time.perf_counter()
            seeded = child.control(
                "POST",
                "seed",
                {
                    "contacts": contacts,
                    "leads": args.records - contacts,
                    "opted_out_fraction": 0.1,
                    "sales_opted_out_fraction": 0.05,
                    "duplicate_fraction": args.duplicate_fraction,
                },
            )
            seed_s = time.perf_counter() - t0
            print(
                f"seed        {args.records:>9,} records in {seed_s:6.2f} s = "
                f"{args.records / seed_s:>9,.0f} records/s "
                f"({seeded['duplicates']:,} carry another record's address)"
            )

            sf = child.salesforce()
            t0 = time.perf_counter()
            rows = sets = 0
            for chunk in sf.bulk2.Contact.query(
                "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact "
                f"ORDER BY Email LIMIT {args.query_rows}",
                max_records=50_000,
                wait=0,
            ):
                rows += chunk.count("\n") - 1
                sets += 1
            query_s = time.perf_counter() - t0
            print(
                f"bulk query  {rows:>9,} rows    in {query_s:6.2f} s = "
                f"{rows / query_s:>9,.0f} rows/s    ({sets} result sets of <= 50,000)"
            )

            child.control("PUT", "settings", {"latency_ms": 100})
            ids = [
                r["Id"] for r in sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 200")["records"]
            ]
            payload = {
                "allOrNone": False,
                "records": [
                    {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True}
                    for i in ids
                ],
            }
            clients = [child.salesforce() for _ in range(args.clients)]

            def push(client: Salesforce) -> None:
                for _ in range(args.calls):
                    client.restful("composite/sobjects", method="PATCH", json=payload, timeout=60)

            threads = [threading.Thread(target=push, args=(c,)) for c in clients]
            cpu0 = child.cpu_s()
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            push_s = time.perf_counter() - t0
            cpu = child.cpu_s() - cpu0
            calls = args.clients * args.calls
            print(
                f"composite   {calls:>9,} calls   in {push_s:6.2f} s = "
                f"{calls / push_s:>9,.1f} calls/s   ({args.clients} clients x 200 records, "
                f"100 ms latency, floor {args.calls * 0.1:.1f} s; emulator CPU "
                f"{cpu / calls * 1000:.1f} ms/call)"
            )
            print(f"peak RSS    {child.peak_rss_mb():>9,.0f} MB (emulator process)")
        finally:
            child.stop()


if __name__ == "__main__":
    main()
