"""Metrics the web process adds to ``optsync.metrics`` (``optsync.web.metrics_server``
serves a worker's own)."""

from __future__ import annotations

from prometheus_client import Counter

UNSUBSCRIBES = Counter(
    "optsync_unsubscribes_recorded_total",
    "Unsubscribes recorded by the web app (links, one-click, API), by source.",
    ["source"],
)
