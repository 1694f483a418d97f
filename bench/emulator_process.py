"""The emulator as the benches run it: its own process, in memory, on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_emulator(data_dir: Path, latency_ms: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``optsync emulator --memory --json`` with ``latency_ms`` per API call and a daily
    API limit no bench reaches; returns the process and the connection details it printed."""
    env = {**os.environ, "OPTSYNC_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optsync.cli.main",
            "emulator",
            "--memory",
            "--json",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--daily-api-limit",
            "100000000",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the emulator did not start")
    return proc, json.loads(line)
