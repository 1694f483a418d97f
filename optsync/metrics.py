"""Prometheus metrics of every optsync process, and how a process exposes them.

Counters and the histogram live in the process that does the work: pushes in the worker
(``optsync worker --metrics-port``, or the ``up`` / ``demo`` process), unsubscribes in the
web process. The outbox gauges are not kept in any process: they are read from the
database on every scrape (:func:`exposition`), so every process reports the same truth.

``optsync serve --workers N`` runs N processes behind one port; a scrape reaches any one
of them. :func:`multiprocess_dir` gives that command a directory of its own, under
``<data dir>/metrics/``, set as ``PROMETHEUS_MULTIPROC_DIR`` before uvicorn starts the
workers, so each one writes its counters there (prometheus-client's multiprocess mode)
and every scrape sums all of them. The directory is emptied when the command starts and
removed when it stops (and left-overs of a command that was killed are removed by the
next one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OUTBOX_STATES = ("pending", "in_flight", "sent", "failed", "not_linked")

PUSHES_SENT = Counter("optsync_pushes_sent_total", "Opt-outs set in Salesforce by pushes.")
PUSHES_FAILED = Counter(
    "optsync_pushes_failed_total",
    "Pushes that failed permanently, by Salesforce error code.",
    ["code"],
)
PUSHES_RETRIED = Counter(
    "optsync_pushes_retried_total", "Push attempts that will be retried, by error code.", ["code"]
)
PUSHES_FOLLOWED = Counter(
    "optsync_pushes_followed_total",
    "Pushes retargeted to a converted Lead's Contact or a merged record's master.",
    ["kind"],
)
API_CALLS = Counter(
    "optsync_salesforce_api_calls_total", "Salesforce API calls made, by purpose.", ["purpose"]
)
PUSH_BATCH_SECONDS = Histogram(
    "optsync_push_batch_seconds",
    "Time to push one batch to Salesforce.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

LIVE_EVENTS = Counter(
    "optsync_live_events_received_total",
    "Change Data Capture events received by the live pull, by object.",
    ["object"],
)
LIVE_APPLIED = Counter(
    "optsync_live_optouts_applied_total",
    "Salesforce-side opt-outs the live pull (stream, gap re-read, poll) applied, by object.",
    ["object"],
)
LIVE_SKIPPED_OWN = Counter(
    "optsync_live_events_skipped_own_total",
    "Change events of optsync's own writes (client=optsync), skipped.",
    ["object"],
)
LIVE_GAPS = Counter(
    "optsync_live_gaps_total",
    "Gap and overflow events, expired replay ids and exhausted allocations, by kind.",
    ["object", "kind"],
)
LIVE_RECONNECTS = Counter(
    "optsync_live_reconnects_total", "Pub/Sub streams rebuilt, by reason.", ["object", "reason"]
)
LIVE_POLLS = Counter(
    "optsync_live_polls_total", "Polls of sobjects/{type}/updated, by object.", ["object"]
)
LIVE_LAG_SECONDS = Histogram(
    "optsync_live_lag_seconds",
    "From a change's commit in Salesforce to its event being handled here.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)


class _OutboxGauges(Collector):
    """``optsync_outbox_depth{state}`` and the oldest open push's age, from one reading of
    the database taken at scrape time."""

    def __init__(self, stats: Mapping[str, float]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("optsync_outbox_depth", "Outbox rows by state.", labels=["state"])
        for state in OUTBOX_STATES:
            depth.add_metric([state], float(self.stats[state]))
        yield depth
        yield GaugeMetricFamily(
            "optsync_outbox_oldest_open_age_seconds",
            "Age of the oldest push not yet sent or failed.",
            value=float(self.stats["oldest_open_age_s"]),
        )


def exposition(outbox_stats: Mapping[str, float]) -> bytes:
    """The Prometheus text for a scrape: this process's counters (or, in multiprocess mode,
    the sum over every process of the serving command) and the outbox gauges."""
    gauges = CollectorRegistry()
    gauges.register(_OutboxGauges(outbox_stats))
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        counters = CollectorRegistry()
        MultiProcessCollector(counters, path=directory)  # type: ignore[no-untyped-call]
    else:
        counters = REGISTRY
    return generate_latest(counters) + generate_latest(gauges)


@contextmanager
def multiprocess_dir(data_dir: Path) -> Iterator[Path]:
    """A fresh ``<data dir>/metrics/serve-<pid>`` as ``PROMETHEUS_MULTIPROC_DIR`` for the
    processes started inside the block (they must import prometheus-client after it is
    set, as uvicorn's spawned workers do); removed afterwards."""
    root = data_dir / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("serve-*"):  # left by a command that was killed
        pid = old.name.removeprefix("serve-")
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    directory = root / f"serve-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
