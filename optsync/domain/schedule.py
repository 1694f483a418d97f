"""The nightly schedule: validating a cron expression and a time zone, and finding runs.

The schedule is a 5-field cron expression read in an IANA time zone (default
``0 20 * * *`` in ``America/Los_Angeles``), because admins think "8 pm in our office",
not in UTC. Every result is an aware UTC ``datetime``, and nothing here reads the clock:
the scheduler passes ``now``.

How wall-clock times become instants (the daylight-saving rules)
----------------------------------------------------------------
croniter enumerates the matching *wall-clock* times (naive, so it cannot get DST wrong);
:func:`_resolve` then turns each one into an instant with ``zoneinfo``:

* a normal time has one instant, so ``0 20 * * *`` in Los Angeles is 03:00 UTC in
  summer (PDT) and 04:00 UTC in winter (PST);
* a time skipped on a spring-forward day (``30 2 * * *`` on 2026-03-08 in Los Angeles)
  runs once, at the first valid instant after the gap (03:00 local), rather than being
  silently dropped for the day or run an hour late;
* a time repeated on a fall-back day (``30 1 * * *`` on 2026-11-01) runs once, at its
  first occurrence.

Resolved instants never decrease as wall times increase, and several skipped times
collapse into one instant, so every schedule is a strictly increasing series of
instants and "runs once" holds by construction. One consequence, accepted on purpose: a
schedule that fires inside the repeated hour (say hourly) skips that hour's second pass,
so once a year it leaves a two-hour gap; for a reconciliation that is harmless, while
running twice would not be.

Catching up
-----------
:func:`due_run` answers the scheduler's one question: is there a scheduled instant at or
before ``now`` that has not run? If several were missed (the machine was off for three
days) it returns only the latest, so a sync catches up once instead of running three
times back to back; a run covers everything anyway, since the sync reconciles state
rather than replaying events.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter


class ScheduleError(ValueError):
    """The schedule or time zone is unusable; ``str()`` names the field and gives an example."""


EXAMPLE = "'0 20 * * *' (every day at 20:00)"

_FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat, 0 and 7 are Sunday"),
)
# Used with fullmatch only: ``$`` would let a trailing newline through.
_NUMERIC = re.compile(r"[0-9*,/-]+")
_NAMED = re.compile(r"[0-9A-Za-z*,/-]+")
# An IANA name: Area/Location[/Sub] or a single word such as UTC; no dots, no leading "/".
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*){0,2}")

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longer than any daylight-saving shift in the tz database (2 hours, historically).
_FOLD_MARGIN = timedelta(hours=3)
_MAX_CANDIDATES = 100_000


def validate_cron(expr: str) -> str:
    """Check a 5-field cron expression; return it normalised (single spaces).

    Standard syntax only (numbers, names, ``*``, ``,``, ``-``, ``/``), plus the usual
    ``@daily``-style aliases, which are returned as their 5-field form. Extensions
    such as seconds, ``L``, ``#``, ``?``, ``H`` or ``R`` are refused: they are not
    portable, and ``H``/``R`` would make the schedule random. An expression that can
    never fire (``0 0 31 2 *``) is refused too, since it would silently never sync.
    """
    raw = " ".join((expr or "").split())
    if not raw:
        raise ScheduleError(
            f"the schedule is empty; give a 5-field cron expression such as {EXAMPLE}"
        )
    if raw.startswith("@"):
        alias = _ALIASES.get(raw.lower())
        if alias is None:
            raise ScheduleError(
                f"unknown schedule alias {raw!r}; use one of {', '.join(sorted(_ALIASES))} "
                f"or a 5-field cron expression such as {EXAMPLE}"
            )
        return alias
    fields = raw.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"a schedule has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}; for example {EXAMPLE}"
        )
    for index, (value, (name, allowed)) in enumerate(zip(fields, _FIELDS, strict=True)):
        pattern = _NAMED if index >= 3 else _NUMERIC
        probe = ["*"] * 5
        probe[index] = value
        if not pattern.fullmatch(value) or not _croniter_accepts(" ".join(probe)):
            raise ScheduleError(
                f"the {name} field {value!r} is not valid (allowed: {allowed}, with *, "
                f"lists a,b, ranges a-b and steps */n); for example {EXAMPLE}"
            )
    normalised = " ".join(fields)
    try:
        croniter(normalised, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(
            f"the schedule {normalised!r} never runs (that day does not exist in that "
            f"month); for example {EXAMPLE}"
        ) from None
    return normalised


def _croniter_accepts(expr: str) -> bool:
    try:
        croniter(expr)
    except (CroniterError, ValueError, KeyError, IndexError):
        return False
    return True


def validate_timezone(name: str) -> str:
    """Check an IANA time zone name (``America/Los_Angeles``); return it stripped.

    Reads the tz database (system or the ``tzdata`` package). On a miss, suggests the
    correctly cased name if only the case was wrong.
    """
    raw = (name or "").strip()
    if not raw:
        raise ScheduleError(
            "the time zone is empty; give an IANA name such as 'America/Los_Angeles'"
        )
    try:
        if not _ZONE_NAME.fullmatch(raw):
            raise ValueError(raw)
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = ""
        matches = [z for z in available_timezones() if z.lower() == raw.lower()]
        if matches:
            hint = f" Did you mean {matches[0]!r}?"
        raise ScheduleError(
            f"the time zone {raw!r} is not an IANA time zone name; use one such as "
            f"'America/Los_Angeles' or 'Europe/Berlin'.{hint}"
        ) from None
    return raw


def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(validate_timezone(tz))


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock time of an instant."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which a scheduled wall-clock time runs (see module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first  # exists; for a repeated time, fold=0 is the first occurrence
    # Skipped by a spring-forward gap: the two folds give instants on either side of the
    # transition; find the transition itself, the first instant after the gap.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = sorted((first, other))
    after_offset = hi.astimezone(zone).utcoffset()
    if lo.astimezone(zone).utcoffset() == after_offset:
        return hi  # not a simple gap (should not happen); fall back to the later side
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after_offset:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def next_run(cron: str, tz: str, after: datetime) -> datetime:
    """The first scheduled instant strictly after ``after``, as an aware UTC datetime."""
    _require_aware(after, "after")
    expr = validate_cron(cron)
    zone = _zone(tz)
    # Resolved instants never decrease with wall time, so scanning forward from the
    # wall time of ``after`` and skipping instants <= after finds the answer; the skips
    # only happen inside a repeated (fall-back) hour.
    it = croniter(expr, _wall(after, zone))
    for _ in range(_MAX_CANDIDATES):
        at = _resolve(it.get_next(datetime), zone)
        if at > after:
            return at
    raise ScheduleError(f"no run of {expr!r} found after {after.isoformat()}")  # pragma: no cover


def previous_run(cron: str, tz: str, at_or_before: datetime) -> datetime | None:
    """The latest scheduled instant at or before ``at_or_before`` (aware UTC), if any."""
    _require_aware(at_or_before, "at_or_before")
    expr = validate_cron(cron)
    zone = _zone(tz)
    # Start a little past the wall time: inside a repeated hour, later wall times can
    # resolve to earlier instants (their first occurrence).
    it = croniter(expr, _wall(at_or_before, zone) + _FOLD_MARGIN)
    try:
        for _ in range(_MAX_CANDIDATES):
            at = _resolve(it.get_prev(datetime), zone)
            if at <= at_or_before:
                return at
    except CroniterBadDateError:
        return None
    return None  # pragma: no cover


def due_run(
    cron: str,
    tz: str,
    last_scheduled_for: datetime | None,
    now: datetime,
    enabled_at: datetime,
) -> datetime | None:
    """The scheduled instant to run now, or ``None`` if nothing is due.

    That is the most recent scheduled instant at or before ``now`` which is later than
    both ``last_scheduled_for`` (the instant the last scheduled run was for) and
    ``enabled_at`` (when the sync was switched on, so that enabling it at 21:00 does not
    immediately run the 20:00 slot that was never promised). Editing the schedule, the
    zone or the field must not move ``enabled_at``: a night missed or edited around still
    runs.
    Only the latest missed instant is returned: the sync catches up once. The caller
    records the returned value as the new ``last_scheduled_for``, which also makes two
    schedulers racing for the same slot detectable.
    """
    _require_aware(now, "now")
    _require_aware(enabled_at, "enabled_at")
    floor = enabled_at
    if last_scheduled_for is not None:
        _require_aware(last_scheduled_for, "last_scheduled_for")
        floor = max(floor, last_scheduled_for)
    latest = previous_run(cron, tz, now)
    if latest is None or latest <= floor:
        return None
    return latest
