"""Prometheus metrics shared by the worker and the web app (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUSHES_SENT = Counter("optsync_pushes_sent_total", "Opt-outs set in Salesforce by pushes.")
PUSHES_FAILED = Counter(
    "optsync_pushes_failed_total", "Pushes that failed permanently, by Salesforce error code.",
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
QUEUE_DEPTH = Gauge("optsync_outbox_depth", "Outbox rows by state.", ["state"])
OLDEST_OPEN_AGE = Gauge(
    "optsync_outbox_oldest_open_age_seconds", "Age of the oldest push not yet sent or failed."
)
PUSH_BATCH_SECONDS = Histogram(
    "optsync_push_batch_seconds", "Time to push one batch to Salesforce.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
