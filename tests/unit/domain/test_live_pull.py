"""The live pull's pure decisions, each as one table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optsync.domain.live_pull import (
    ALLOCATION_PAUSE,
    Action,
    ChangeEvent,
    Cover,
    Mode,
    Signal,
    Status,
    call_option_client,
    catch_up_cursor,
    decide_event,
    decode_bitmap,
    effective_mode,
    poll_window,
    polls,
    reconnect_at,
    stalled,
    transition,
    watermark,
    window_cut,
)

NOW = datetime(2026, 12, 8, 12, 30, 42, tzinfo=UTC)
NAMES = ["ChangeEventHeader", "Name", "Email", "HasOptedOutOfEmail", "LastModifiedDate"]
NESTED = {1: ["Salutation", "FirstName", "LastName"]}


@pytest.mark.parametrize(
    ("bitmaps", "expected"),
    [
        (["0x0"], set()),
        (["0x8"], {"HasOptedOutOfEmail"}),
        (["0x18"], {"HasOptedOutOfEmail", "LastModifiedDate"}),
        (["0x4", "1-0x6"], {"Email", "Name.FirstName", "Name.LastName"}),
        (["0x1"], {"ChangeEventHeader"}),
        ([], set()),
    ],
)
def test_decode_bitmap(bitmaps, expected):
    assert decode_bitmap(bitmaps, NAMES, NESTED) == expected


def test_a_bitmap_beyond_the_schema_is_refused():
    with pytest.raises(ValueError, match="beyond the schema"):
        decode_bitmap(["0x40"], NAMES)


@pytest.mark.parametrize(
    ("origin", "client"),
    [
        ("com/salesforce/api/rest/59.0;client=optsync", "optsync"),
        ("com/salesforce/api/bulkapi/59.0;client=dataloader", "dataloader"),
        ("com/salesforce/api/soap/59.0", None),
        ("", None),
        (None, None),
        ("client=optsync", None),  # no API path: not the documented shape
    ],
)
def test_call_option_client(origin, client):
    assert call_option_client(origin) == client


def event(kind="UPDATE", changed=("HasOptedOutOfEmail",), value=True, origin=None):
    return ChangeEvent(
        entity="Contact",
        record_ids=("003000000000001AAA",),
        change_type=kind,
        change_origin=origin,
        commit_timestamp_ms=1,
        commit_user="005000000000001AAA",
        changed_fields=frozenset(changed),
        field_value=value,
    )


OWN = "com/salesforce/api/rest/59.0;client=optsync"


@pytest.mark.parametrize(
    ("ev", "action"),
    [
        (event(), Action.APPLY),
        (event(value=False), Action.IGNORE),  # cleared: never re-subscribes
        (event(value=None), Action.IGNORE),
        (event(changed=("Email",)), Action.IGNORE),  # set before, another field changed
        (event(origin=OWN), Action.SKIP_OWN),
        (event(origin="com/salesforce/api/rest/59.0;client=other"), Action.APPLY),
        (event("CREATE", changed=()), Action.APPLY),
        (event("CREATE", changed=(), value=False), Action.IGNORE),
        (event("UNDELETE", changed=()), Action.APPLY),
        (event("DELETE", changed=()), Action.IGNORE),
        (event("GAP_UPDATE", changed=(), value=None), Action.REREAD),
        (event("GAP_CREATE", changed=(), value=None, origin=OWN), Action.REREAD),
        (event("GAP_UNDELETE", changed=(), value=None), Action.REREAD),
        (event("GAP_DELETE", changed=(), value=None), Action.IGNORE),
        (event("GAP_OVERFLOW", changed=(), value=None), Action.CATCH_UP),
    ],
)
def test_decide_event(ev, action):
    assert decide_event(ev, "HasOptedOutOfEmail") is action


@pytest.mark.parametrize(
    ("status", "signal", "mode", "after"),
    [
        (Status.OFF, Signal.START, Mode.AUTO, Status.STARTING),
        (Status.STARTING, Signal.SUBSCRIBED, Mode.AUTO, Status.LIVE),
        (Status.STARTING, Signal.TOPIC_UNAVAILABLE, Mode.AUTO, Status.POLLING),
        (Status.STARTING, Signal.TOPIC_UNAVAILABLE, Mode.CDC, Status.RECONNECTING),
        (Status.LIVE, Signal.STREAM_FAILED, Mode.AUTO, Status.RECONNECTING),
        (Status.LIVE, Signal.STALLED, Mode.CDC, Status.RECONNECTING),
        (Status.LIVE, Signal.REPLAY_LOST, Mode.AUTO, Status.CATCHING_UP),
        (Status.RECONNECTING, Signal.REPLAY_LOST, Mode.CDC, Status.CATCHING_UP),
        (Status.CATCHING_UP, Signal.CAUGHT_UP, Mode.AUTO, Status.STARTING),
        (Status.LIVE, Signal.CAUGHT_UP, Mode.AUTO, Status.LIVE),
        (Status.RECONNECTING, Signal.SUBSCRIBED, Mode.AUTO, Status.LIVE),
        (Status.POLLING, Signal.START, Mode.AUTO, Status.STARTING),
        (Status.LIVE, Signal.STOP, Mode.AUTO, Status.OFF),
        (Status.LIVE, Signal.SUBSCRIBED, Mode.OFF, Status.OFF),
        (Status.LIVE, Signal.START, Mode.POLL, Status.POLLING),
        (Status.OFF, Signal.SUBSCRIBED, Mode.POLL, Status.POLLING),
    ],
)
def test_transition(status, signal, mode, after):
    assert transition(status, signal, mode) is after


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.POLLING, True),
        (Status.RECONNECTING, True),
        (Status.LIVE, False),
        (Status.CATCHING_UP, False),
        (Status.STARTING, False),
        (Status.OFF, False),
    ],
)
def test_polls(status, expected):
    assert polls(status) is expected


@pytest.mark.parametrize(
    ("mode", "enabled", "expected"),
    [("auto", True, Mode.AUTO), ("poll", True, Mode.POLL), ("cdc", False, Mode.OFF)],
)
def test_effective_mode(mode, enabled, expected):
    assert effective_mode(mode, enabled) is expected


@pytest.mark.parametrize(
    ("failures", "u", "low", "high"),
    [(1, 0.0, 0.5, 0.5), (1, 0.999, 0.5, 1.0), (3, 0.0, 2.0, 2.0), (20, 0.999, 30.0, 60.0)],
)
def test_reconnects_back_off(failures, u, low, high):
    delay = (reconnect_at(NOW, failures, lambda: u) - NOW).total_seconds()
    assert low <= delay <= high


def test_an_exhausted_allocation_waits_long():
    assert reconnect_at(NOW, 1, lambda: 0.0, allocation_exhausted=True) == NOW + ALLOCATION_PAUSE


@pytest.mark.parametrize(("silent_s", "expected"), [(0, False), (299.9, False), (300, True)])
def test_watchdog(silent_s, expected):
    assert stalled(NOW - timedelta(seconds=silent_s), NOW) is expected


@pytest.mark.parametrize(
    ("cursor", "now", "window"),
    [
        # the window starts 5 minutes before the last latestDateCovered, minute-aligned
        (
            datetime(2026, 12, 8, 12, 29, tzinfo=UTC),
            NOW,
            (datetime(2026, 12, 8, 12, 24, tzinfo=UTC), datetime(2026, 12, 8, 12, 30, tzinfo=UTC)),
        ),
        # never further back than the API's 30 days
        (
            NOW - timedelta(days=90),
            NOW,
            (
                datetime(2026, 11, 8, 12, 31, tzinfo=UTC),
                datetime(2026, 12, 8, 12, 30, tzinfo=UTC),
            ),
        ),
    ],
)
def test_poll_window(cursor, now, window):
    assert poll_window(cursor, now) == window


def test_poll_window_waits_for_a_whole_minute():
    assert poll_window(NOW, NOW, overlap=timedelta(0)) is None


def test_catch_up_starts_at_the_last_commit_or_the_first_subscribe():
    since = NOW - timedelta(hours=1)
    assert catch_up_cursor(None, since) == since
    assert catch_up_cursor(NOW, since) == NOW


def test_a_window_cut_by_the_30_days_is_seen():
    cursor = NOW - timedelta(days=90)
    assert window_cut(cursor, poll_window(cursor, NOW))  # type: ignore[arg-type]
    recent = NOW - timedelta(minutes=1)
    assert not window_cut(recent, poll_window(recent, NOW))  # type: ignore[arg-type]


T = NOW - timedelta(seconds=5)
EARLIER = NOW - timedelta(minutes=2)
BOTH = ("Contact", "Lead")


@pytest.mark.parametrize(
    ("covers", "mirrored", "expected"),
    [
        # every stream live: the commit time just applied
        ({"Contact": Cover(live=True), "Lead": Cover(live=True)}, BOTH, T),
        # a polled object holds it to the end of its last window
        ({"Contact": Cover(live=True), "Lead": Cover(polled_through=EARLIER)}, BOTH, EARLIER),
        # ... but never past the candidate itself
        ({"Contact": Cover(polled_through=NOW), "Lead": Cover(live=True)}, BOTH, T),
        # a stream down and no poll since: nothing moves
        ({"Contact": Cover(live=True), "Lead": Cover()}, BOTH, None),
        # an object the full read does not read (Person Accounts): nothing moves
        (
            {"Contact": Cover(live=True), "Lead": Cover(live=True), "Account": Cover(live=True)},
            BOTH,
            None,
        ),
        ({}, BOTH, None),
    ],
)
def test_watermark(covers, mirrored, expected):
    assert watermark(T, covers, mirrored) == expected
