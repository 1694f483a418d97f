"""Faults the soak injects into its own worker processes, to prove that it can fail.

Test-only: nothing in ``optsync/`` imports this module or reads its switch. The soak reads
``OPTSYNC_SOAK_FAULT`` itself and, only when it is set, starts each worker as
``python -c "<install the fault>; optsync.cli.main.run()" worker ...`` (see
:func:`worker_command`). Production workers, the web processes and the sync runs are
started as ``python -m optsync.cli.main`` and never see it.

``drop-one-batch[:SECONDS]``: the first push batch sent at least ``SECONDS`` (default 0)
after the test started (setup included), in any worker, is reported to the pusher as
written while nothing reaches Salesforce: a worker that loses pushes. Exactly one batch
in the whole soak is dropped (the workers race for an ``O_EXCL`` marker file, which
records the dropped ids).
The soak must then fail on invariant 1 before any final sync.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

FAULTS = ("drop-one-batch",)


def parse(value: str) -> tuple[str, float]:
    """``drop-one-batch:12.5`` → ``("drop-one-batch", 12.5)``; unknown kinds are an error."""
    kind, _, after = value.partition(":")
    if kind not in FAULTS:
        raise ValueError(f"OPTSYNC_SOAK_FAULT={value!r}: known faults are {', '.join(FAULTS)}")
    return kind, float(after or 0)


def worker_command(kind: str, marker: str, not_before: float) -> list[str]:
    """The interpreter arguments that start ``optsync`` with the fault installed."""
    code = (
        "import sys; sys.argv[0] = 'optsync'; "
        "from tests.soak.faults import install; "
        f"install({kind!r}, {marker!r}, {not_before!r}); "
        "from optsync.cli.main import run; run()"
    )
    return [sys.executable, "-c", code]


def install(kind: str, marker: str, not_before: float) -> None:
    """Patch this process's Salesforce gateway (called before the CLI starts)."""
    if kind != "drop-one-batch":
        raise ValueError(kind)
    from optsync.salesforce import gateway

    original = gateway.SalesforceGateway.set_opt_out  # fail loudly if renamed

    def set_opt_out(self: Any, targets: Any, field: str) -> Any:
        if targets and time.time() >= not_before and _claim(marker, targets, field):
            return [gateway.RecordResult(t.salesforce_id, True) for t in targets]
        return original(self, targets, field)

    gateway.SalesforceGateway.set_opt_out = set_opt_out  # type: ignore[method-assign]


def _claim(marker: str, targets: Any, field: str) -> bool:
    """True for the one caller that creates the marker; it records what was dropped."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {
                "pid": os.getpid(),
                "at": time.time(),
                "field": field,
                "ids": [t.salesforce_id for t in targets],
            },
            fh,
        )
    return True
