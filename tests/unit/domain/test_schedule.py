"""The nightly schedule across the 2026 daylight-saving changes.

Los Angeles: 2026-03-08 02:00 PST -> 03:00 PDT (10:00 UTC); 2026-11-01 02:00 PDT -> 01:00
PST (09:00 UTC). Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC); 2026-10-25 03:00
CEST -> 02:00 CET (01:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optsync.domain.schedule import (
    ScheduleError,
    due_run,
    next_run,
    previous_run,
    validate_cron,
    validate_timezone,
)

LA = "America/Los_Angeles"
BERLIN = "Europe/Berlin"


def u(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- validate_cron -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "normalised"),
    [
        ("0 20 * * *", "0 20 * * *"),
        ("  0   20 *\t* *  ", "0 20 * * *"),
        ("*/15 9-17 * * mon-fri", "*/15 9-17 * * mon-fri"),
        ("0 0 1 JAN *", "0 0 1 JAN *"),
        ("0 0 * * 7", "0 0 * * 7"),
        ("0,30 1-3/2 1,15 * 0-6", "0,30 1-3/2 1,15 * 0-6"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
    ],
)
def test_validate_cron_accepts(expr: str, normalised: str) -> None:
    assert validate_cron(expr) == normalised


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0 20 * *", "5 fields.*has 4"),
        ("0 0 20 * * *", "5 fields.*has 6"),
        ("60 20 * * *", "minute field '60'"),
        ("a 20 * * *", "minute field 'a'"),
        ("H 20 * * *", "minute field 'H'"),
        ("R 20 * * *", "minute field 'R'"),
        ("*/0 20 * * *", "minute field"),
        ("0 24 * * *", "hour field '24'"),
        ("0 -1 * * *", "hour field"),
        ("0 0 0 * *", "day of month field '0'"),
        ("0 0 32 * *", "day of month field"),
        ("0 0 L * *", "day of month field 'L'"),
        ("0 0 ? * *", "day of month field"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * foo *", "month field 'foo'"),
        ("0 0 * * 8", "day of week field '8'"),
        ("0 0 * * 1#2", "day of week field"),
        ("0 0 * * funday", "day of week field"),
        ("0 0 31 2 *", "never runs"),
        ("0 0 30 2 *", "never runs"),
        ("@reboot", "alias"),
    ],
)
def test_validate_cron_rejects_naming_the_field_with_an_example(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as excinfo:
        validate_cron(expr)
    assert "0 20 * * *" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


# -- validate_timezone ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "result"),
    [(LA, LA), (f"  {BERLIN} ", BERLIN), ("UTC", "UTC"), ("Asia/Kolkata", "Asia/Kolkata")],
)
def test_validate_timezone_accepts(name: str, result: str) -> None:
    assert validate_timezone(name) == result


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("Mars/Olympus_Mons", "not an IANA time zone"),
        ("../../etc/passwd", "not an IANA time zone"),
        ("/etc/localtime", "not an IANA time zone"),
        ("america/los_angeles", "Did you mean 'America/Los_Angeles'"),
    ],
)
def test_validate_timezone_rejects(name: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate_timezone(name)


# -- next_run ------------------------------------------------------------------------

NEXT: list[tuple[str, str, str, str, str]] = [
    # name, cron, tz, after (UTC), expected (UTC)
    ("LA 20:00 in summer is 03:00 UTC", "0 20 * * *", LA, "2026-07-01T00:00", "2026-07-01T03:00"),
    ("LA 20:00 in winter is 04:00 UTC", "0 20 * * *", LA, "2026-12-01T00:00", "2026-12-01T04:00"),
    ("LA 20:00 the evening before spring-forward (PST)", "0 20 * * *", LA,
     "2026-03-07T12:00", "2026-03-08T04:00"),
    ("LA 20:00 on spring-forward day (PDT)", "0 20 * * *", LA,
     "2026-03-08T04:00", "2026-03-09T03:00"),
    ("LA 20:00 the evening before fall-back (PDT)", "0 20 * * *", LA,
     "2026-10-31T12:00", "2026-11-01T03:00"),
    ("LA 20:00 on fall-back day (PST)", "0 20 * * *", LA,
     "2026-11-01T03:00", "2026-11-02T04:00"),
    ("result is strictly after 'after'", "0 20 * * *", LA,
     "2026-12-01T04:00", "2026-12-02T04:00"),
    ("skipped 02:30 runs at the first valid instant, 03:00 PDT", "30 2 * * *", LA,
     "2026-03-07T10:30", "2026-03-08T10:00"),
    ("02:30 the day after spring-forward is PDT again", "30 2 * * *", LA,
     "2026-03-08T10:00", "2026-03-09T09:30"),
    ("every 15 min inside the gap collapses into one run", "*/15 2 * * *", LA,
     "2026-03-08T09:59", "2026-03-08T10:00"),
    ("... and only one", "*/15 2 * * *", LA, "2026-03-08T10:00", "2026-03-09T09:00"),
    ("03:00 on spring-forward day coincides with the skipped slot, runs once",
     "0,30 2-3 * * *", LA, "2026-03-08T09:30", "2026-03-08T10:00"),
    ("... then 03:30 PDT", "0,30 2-3 * * *", LA, "2026-03-08T10:00", "2026-03-08T10:30"),
    ("repeated 01:30 runs at its first occurrence (PDT)", "30 1 * * *", LA,
     "2026-11-01T07:00", "2026-11-01T08:30"),
    ("repeated 01:30 does not run again in PST", "30 1 * * *", LA,
     "2026-11-01T08:30", "2026-11-02T09:30"),
    ("asked from inside the second 01:xx, still not again", "30 1 * * *", LA,
     "2026-11-01T09:10", "2026-11-02T09:30"),
    ("half-hourly in the repeated hour: first pass only", "*/30 1 * * *", LA,
     "2026-11-01T08:00", "2026-11-01T08:30"),
    ("half-hourly in the repeated hour: then tomorrow", "*/30 1 * * *", LA,
     "2026-11-01T08:30", "2026-11-02T09:00"),
    ("02:00 after fall-back is PST", "0 2 * * *", LA, "2026-11-01T08:30", "2026-11-01T10:00"),
    ("Berlin 20:00 in winter is 19:00 UTC", "0 20 * * *", BERLIN,
     "2026-03-28T00:00", "2026-03-28T19:00"),
    ("Berlin 20:00 on spring-forward day is 18:00 UTC", "0 20 * * *", BERLIN,
     "2026-03-28T19:00", "2026-03-29T18:00"),
    ("Berlin skipped 02:30 runs at 03:00 CEST", "30 2 * * *", BERLIN,
     "2026-03-28T12:00", "2026-03-29T01:00"),
    ("Berlin repeated 02:30 runs in CEST", "30 2 * * *", BERLIN,
     "2026-10-24T12:00", "2026-10-25T00:30"),
    ("Berlin repeated 02:30 not again in CET", "30 2 * * *", BERLIN,
     "2026-10-25T00:30", "2026-10-26T01:30"),
    ("Berlin 20:00 on fall-back day is 19:00 UTC", "0 20 * * *", BERLIN,
     "2026-10-25T00:30", "2026-10-25T19:00"),
    ("weekdays only: Friday evening to Monday", "0 20 * * mon-fri", LA,
     "2026-11-21T04:00", "2026-11-24T04:00"),
    ("leap day", "0 0 29 2 *", "UTC", "2026-01-01T00:00", "2028-02-29T00:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in NEXT],
)
def test_next_run(cron: str, tz: str, after: str, expected: str) -> None:
    result = next_run(cron, tz, u(after))
    assert result == u(expected)
    assert result.tzinfo is UTC


def test_next_run_accepts_any_aware_datetime() -> None:
    pdt = timezone(timedelta(hours=-7))
    after = datetime(2026, 7, 1, 19, 0, tzinfo=pdt)  # 2026-07-02T02:00Z
    assert next_run("0 20 * * *", LA, after) == u("2026-07-02T03:00")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run("0 20 * * *", LA, datetime(2026, 7, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        due_run("0 20 * * *", LA, None, datetime(2026, 7, 1), u("2026-01-01T00:00"))


def test_invalid_schedule_or_zone_raise_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="hour field"):
        next_run("0 25 * * *", LA, u("2026-07-01T00:00"))
    with pytest.raises(ScheduleError, match="IANA"):
        next_run("0 20 * * *", "Nowhere/Special", u("2026-07-01T00:00"))


# -- previous_run and due_run --------------------------------------------------------

PREVIOUS: list[tuple[str, str, str, str, str | None]] = [
    ("an exact instant counts", "0 20 * * *", LA, "2026-11-02T04:00", "2026-11-02T04:00"),
    ("just before it, the day before", "0 20 * * *", LA, "2026-11-02T03:59:59",
     "2026-11-01T03:00"),
    ("the skipped slot is at the transition", "30 2 * * *", LA, "2026-03-08T10:15",
     "2026-03-08T10:00"),
    ("inside the second 01:xx, the first occurrence", "30 1 * * *", LA, "2026-11-01T09:45",
     "2026-11-01T08:30"),
    ("Berlin repeated hour", "30 2 * * *", BERLIN, "2026-10-25T01:45", "2026-10-25T00:30"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "tz", "at", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in PREVIOUS],
)
def test_previous_run(cron: str, tz: str, at: str, expected: str | None) -> None:
    assert previous_run(cron, tz, u(at)) == (u(expected) if expected else None)


DUE: list[tuple[str, str, str, str | None, str, str, str | None]] = [
    # name, cron, tz, last_scheduled_for, now, enabled_at, expected
    ("first slot after install is due at its time", "0 20 * * *", LA, None,
     "2026-11-02T04:00", "2026-11-01T12:00", "2026-11-02T04:00"),
    ("not yet", "0 20 * * *", LA, None, "2026-11-02T03:59:59", "2026-11-01T12:00", None),
    ("a slot before installation is never due", "0 20 * * *", LA, None,
     "2026-11-01T12:00", "2026-11-01T05:00", None),
    ("installing exactly at a slot does not run it", "0 20 * * *", LA, None,
     "2026-11-02T05:00", "2026-11-02T04:00", None),
    ("late by an hour: still due", "0 20 * * *", LA, "2026-11-23T04:00",
     "2026-11-24T05:00", "2026-01-01T00:00", "2026-11-24T04:00"),
    ("already ran: nothing", "0 20 * * *", LA, "2026-11-24T04:00",
     "2026-11-24T05:00", "2026-01-01T00:00", None),
    ("four missed: catch up once, with the latest", "0 20 * * *", LA, "2026-11-20T04:00",
     "2026-11-24T05:00", "2026-01-01T00:00", "2026-11-24T04:00"),
    ("missed across fall-back: the PST slot", "0 20 * * *", LA, "2026-10-30T03:00",
     "2026-11-02T12:00", "2026-01-01T00:00", "2026-11-02T04:00"),
    ("skipped-time slot is due at the transition", "30 2 * * *", LA, "2026-03-07T10:30",
     "2026-03-08T10:00", "2026-01-01T00:00", "2026-03-08T10:00"),
    ("... and not a second earlier", "30 2 * * *", LA, "2026-03-07T10:30",
     "2026-03-08T09:59:59", "2026-01-01T00:00", None),
    ("repeated hour does not run twice", "30 1 * * *", LA, "2026-11-01T08:30",
     "2026-11-01T09:45", "2026-01-01T00:00", None),
    ("Berlin repeated hour does not run twice", "30 2 * * *", BERLIN, "2026-10-25T00:30",
     "2026-10-25T01:45", "2026-01-01T00:00", None),
    ("Berlin 20:00 CEST", "0 20 * * *", BERLIN, "2026-03-28T19:00",
     "2026-03-29T18:00", "2026-01-01T00:00", "2026-03-29T18:00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "tz", "last", "now", "installed", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in DUE],
)
def test_due_run(
    cron: str, tz: str, last: str | None, now: str, installed: str, expected: str | None
) -> None:
    result = due_run(cron, tz, u(last) if last else None, u(now), u(installed))
    assert result == (u(expected) if expected else None)


def test_due_run_once_then_not_again() -> None:
    installed = u("2026-01-01T00:00")
    now = u("2026-11-24T05:00")
    slot = due_run("0 20 * * *", LA, None, now, installed)
    assert slot == u("2026-11-24T04:00")
    assert due_run("0 20 * * *", LA, slot, now, installed) is None
    assert due_run("0 20 * * *", LA, slot, u("2026-11-25T04:00"), installed) == u(
        "2026-11-25T04:00"
    )


# -- properties ----------------------------------------------------------------------

CRONS = ["0 20 * * *", "30 2 * * *", "30 1 * * *", "*/20 1-3 * * *", "0 * * * *", "15 3 * * 0"]
instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2026, 12, 31),
).map(lambda d: d.replace(microsecond=0, tzinfo=UTC))


@given(st.sampled_from(CRONS), st.sampled_from([LA, BERLIN]), instants)
def test_next_and_previous_agree(cron: str, tz: str, at: datetime) -> None:
    nxt = next_run(cron, tz, at)
    assert nxt > at
    assert nxt.tzinfo is UTC
    # nothing scheduled strictly between ``at`` and ``nxt``
    assert previous_run(cron, tz, nxt - timedelta(seconds=1)) <= at  # type: ignore[operator]
    assert previous_run(cron, tz, nxt) == nxt
    prev = previous_run(cron, tz, at)
    assert prev is not None
    assert prev <= at
    assert next_run(cron, tz, prev) == nxt or next_run(cron, tz, prev) <= at


@given(st.sampled_from(CRONS), st.sampled_from([LA, BERLIN]), instants)
def test_due_run_never_exceeds_now_and_is_idempotent(cron: str, tz: str, now: datetime) -> None:
    installed = u("2025-12-01T00:00")
    slot = due_run(cron, tz, None, now, installed)
    assert slot is not None
    assert slot <= now
    assert due_run(cron, tz, slot, now, installed) is None
