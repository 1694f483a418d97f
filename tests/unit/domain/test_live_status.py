"""The Integrations tab's live-pull sentences."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from optsync.services.live_pull.status import describe
from optsync.services.sync_settings import DEFAULTS
from optsync.store.live_pull import ObjectState

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
ON = replace(DEFAULTS, sync_enabled=True)


def state(obj, status, detail=None, last_event=None):
    return ObjectState(obj, None, None, None, "cdc", status, detail, last_event, NOW)


def test_sentences_per_object():
    lines = describe(
        ON,
        [
            state("Contact", "live", last_event=NOW - timedelta(seconds=3)),
            state("Lead", "polling", "CDC not enabled for Lead"),
        ],
        NOW + timedelta(seconds=10),
        NOW,
    )
    assert lines == [
        "Contact: Live via Change Data Capture — last event 3 s ago",
        "Lead: Polling every 60 s — CDC not enabled for Lead",
    ]
    gap = describe(ON, [state("Contact", "catching_up")], NOW + timedelta(seconds=10), NOW)
    assert gap[0] == "Contact: Catching up after a gap"


def test_off_and_no_worker():
    assert describe(DEFAULTS, [], None, NOW) == ["Live pull runs while Sync to Salesforce is on."]
    assert "waiting for a worker" in describe(ON, [], None, NOW)[0]
    off = replace(ON, live_pull="off")
    assert "nightly sync" in describe(off, [], None, NOW)[0]
