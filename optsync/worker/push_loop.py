"""The push worker loop: drain the outbox continuously, sleep until woken."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from optsync.services.push import Pusher, PushReport
from optsync.store.outbox import LOCAL_WAKEUP, next_due_at

log = logging.getLogger(__name__)


def run_push_loop(pusher: Pusher, stop: threading.Event, *, poll_s: float = 1.0) -> None:
    """Push until ``stop`` is set. Never raises for a single failed cycle."""
    while not stop.is_set():
        LOCAL_WAKEUP.clear()
        try:
            report = pusher.run_once()
        except Exception:  # a database blip must not kill the worker; log and back off
            log.exception("push cycle failed; retrying shortly", extra={"worker": pusher.worker})
            stop.wait(min(poll_s * 5, 10.0))
            continue
        _log_cycle(report, pusher.worker)
        if report.paused_until is not None:
            wait = max((report.paused_until - pusher.clock()).total_seconds(), 0.0)
            log.warning(
                "Salesforce daily API limit reached; pushes paused",
                extra={"paused_until": report.paused_until.isoformat(), "worker": pusher.worker},
            )
            stop.wait(wait)
            continue
        if report.claimed:
            continue  # more may be due: keep going while there is work
        timeout = _until_next_due(pusher, poll_s)
        LOCAL_WAKEUP.wait(timeout)


def _until_next_due(pusher: Pusher, poll_s: float) -> float:
    with pusher.db.transaction() as session:
        due: datetime | None = next_due_at(session)
    if due is None:
        return poll_s
    return min(max((due - pusher.clock()).total_seconds(), 0.0), poll_s)


def _log_cycle(report: PushReport, worker: str) -> None:
    if report.claimed:
        fields = {
            **report.as_dict(),
            "worker": worker,
            "failed": sum(report.failed.values()),
            "failed_codes": ",".join(sorted(report.failed)) or None,
        }
        log.info("pushed a batch to Salesforce", extra=fields)
