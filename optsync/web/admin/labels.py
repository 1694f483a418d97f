"""The words the admin pages use for sources and push states (one place, so the list,
the ledger, the chart legend and the tests agree)."""

from __future__ import annotations

SOURCE_LABELS = {
    "page": "Unsubscribe page",
    "one_click": "One-click (mailbox provider)",
    "api": "API",
    "cli": "Command line",
    "csv": "CSV import",
    "admin": "Admin",
    "salesforce": "Salesforce",
}
PUSH_LABELS = {
    "pending": "Pending",
    "pushed": "Pushed",
    "failed": "Failed",
    "not_linked": "Not in Salesforce",
    "cancelled": "Cancelled (re-subscribed)",
}

LIVE_PULL_STATES = {
    "off": "Off (Salesforce-side opt-outs arrive with the nightly sync)",
    "waiting": "Waiting for a worker",
    "live": "Live (Change Data Capture)",
    "polling": "Polling",
    "catching_up": "Catching up after a gap",
    "reconnecting": "Reconnecting",
    "starting": "Starting",
}
"""The live pull's state in the health banner (optsync.services.health)."""

PROBLEM_LABELS = {
    "failed_run": "Run failed",
    "failed_pushes": "Pushes failed",
    "stuck_pushes": "Pushes stuck",
    "live_pull": "Live pull",
}

RUN_FILTER_LABELS = {
    "pulled_by_run": "Pulled by sync run",
    "pushed_by_run": "Pushed by sync run",
}
"""The Unsubscribes list's run filters, as the active-filter chips and errors name them."""

OBJECT_LABELS = {"Contact": "Contact", "Lead": "Lead", "Account": "Person Account"}
