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
    "not_linked": "Not linked",
    "cancelled": "Cancelled (re-subscribed)",
}
