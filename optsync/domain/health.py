"""Sync health and its notifications, decided without I/O.

:func:`problems` turns the facts the services read (cheap counts, the last runs, the
live pull's state) into what is failing, each said in words with where to act;
:func:`plan_notifications` decides which of those become a notification, once: a failed
run is announced once (its key is ``run_failed:ID``), a spell of stuck pushes once when
it starts (``pushes_stuck:OLDEST_ID``) and, optionally, once when it ends (``…:resolved``).
The keys are unique in the database, so several workers deciding the same thing insert
one row. :func:`webhook_signature` is the HMAC a webhook receiver verifies.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

STUCK_AFTER_MIN = 15
"""The default age after which a waiting push counts as stuck."""
FAILED_RUN_WINDOW = timedelta(hours=24)
"""Failed runs older than this are not announced (a worker back after a long outage does
not send a flood of old news)."""
MAX_DELIVERY_ATTEMPTS = 8
DELIVERY_BASE_S = 30.0
DELIVERY_CAP_S = 3600.0


@dataclass(frozen=True)
class RunFact:
    id: int
    status: str
    finished_at: datetime | None
    error: str | None = None
    failed_pushes: int = 0


@dataclass(frozen=True)
class HealthFacts:
    """What the health queries found; ``now`` is the moment they were read."""

    now: datetime
    sync_enabled: bool
    last_success: RunFact | None
    last_run: RunFact | None
    running: RunFact | None
    waiting: int
    oldest_waiting_at: datetime | None
    failed_pushes: int
    stuck: int
    stuck_after_min: int
    live_pull: str
    """``off``, ``waiting`` (no worker holds it), ``live``, ``polling``, ``catching_up``,
    ``reconnecting``, ``starting``."""


@dataclass(frozen=True)
class Problem:
    kind: str
    """``failed_pushes``, ``failed_run``, ``stuck_pushes``, ``live_pull``."""
    text: str
    href: str | None = None
    count: int | None = None


def problems(facts: HealthFacts) -> list[Problem]:
    """What is failing, most urgent first; an empty list means healthy."""
    out: list[Problem] = []
    last = facts.last_run
    if last is not None and last.status == "failed":
        out.append(
            Problem(
                "failed_run",
                f"The last sync run (#{last.id}) failed: {last.error or 'no reason recorded'}",
                href=f"/settings/admin/unsubscribes/runs/{last.id}",
            )
        )
    if facts.failed_pushes:
        n = facts.failed_pushes
        out.append(
            Problem(
                "failed_pushes",
                f"{n:,} push{'es' if n != 1 else ''} failed and need{'s' if n == 1 else ''} a fix",
                href="/settings/admin/unsubscribes/failures",
                count=n,
            )
        )
    if facts.stuck:
        n = facts.stuck
        out.append(
            Problem(
                "stuck_pushes",
                f"{n:,} push{'es have' if n != 1 else ' has'} waited more than "
                f"{facts.stuck_after_min} min: is `optsync worker` running and Salesforce "
                "reachable?",
                count=n,
            )
        )
    if facts.sync_enabled and facts.live_pull == "waiting":
        out.append(
            Problem("live_pull", "The live pull waits for a worker: start `optsync worker`.")
        )
    return out


def status_of(found: list[Problem]) -> str:
    """``ok``, or ``failing`` when anything needs an admin."""
    return "failing" if found else "ok"


# -- notifications -------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    key: str
    kind: str
    payload: dict[str, object]


@dataclass(frozen=True)
class StuckSpell:
    """The stuck pushes now: how many, the oldest's id and when it was queued."""

    count: int
    oldest_id: int | None = None
    oldest_at: datetime | None = None


@dataclass(frozen=True)
class NotificationPlan:
    new: list[NewEvent] = field(default_factory=list)
    resolve: str | None = None
    """The key of the open stuck spell that has ended (its row gets ``resolved_at``)."""


def stuck_key(oldest_id: int) -> str:
    return f"pushes_stuck:{oldest_id}"


def plan_notifications(
    *,
    now: datetime,
    enabled_at: datetime | None,
    failed_runs: list[RunFact],
    known_keys: set[str],
    stuck: StuckSpell,
    stuck_after_min: int,
    open_spell: str | None,
    notify_resolved: bool,
) -> NotificationPlan:
    """The events to insert now. ``failed_runs``: failed real runs recently finished;
    ``known_keys``: their keys already stored; ``open_spell``: the key of the stuck spell
    announced and not yet resolved, if any."""
    if enabled_at is None:
        return NotificationPlan()
    since = max(enabled_at, now - FAILED_RUN_WINDOW)
    new: list[NewEvent] = []
    for run in sorted(failed_runs, key=lambda r: r.id):
        key = f"run_failed:{run.id}"
        if key in known_keys or run.finished_at is None or run.finished_at < since:
            continue
        new.append(
            NewEvent(
                key,
                "run_failed",
                {
                    "run_id": run.id,
                    "error": run.error,
                    "finished_at": run.finished_at.isoformat(),
                },
            )
        )
    resolve = None
    if stuck.count and stuck.oldest_id is not None and open_spell is None:
        age = (now - stuck.oldest_at).total_seconds() if stuck.oldest_at else None
        new.append(
            NewEvent(
                stuck_key(stuck.oldest_id),
                "pushes_stuck",
                {
                    "count": stuck.count,
                    "oldest_age_s": round(age) if age is not None else None,
                    "stuck_after_min": stuck_after_min,
                },
            )
        )
    elif not stuck.count and open_spell is not None:
        resolve = open_spell
        if notify_resolved:
            new.append(NewEvent(f"{open_spell}:resolved", "resolved", {"resolves": open_spell}))
    return NotificationPlan(new, resolve)


def message_of(kind: str, payload: dict[str, object]) -> tuple[str, str]:
    """The subject and text of a notification (no address, no secret)."""
    if kind == "run_failed":
        return (
            f"optsync: sync run #{payload.get('run_id')} failed",
            f"Sync run #{payload.get('run_id')} failed at {payload.get('finished_at')}.\n\n"
            f"{payload.get('error') or 'No reason was recorded.'}",
        )
    if kind == "pushes_stuck":
        return (
            f"optsync: {payload.get('count')} push(es) stuck",
            f"{payload.get('count')} push(es) to Salesforce have waited more than "
            f"{payload.get('stuck_after_min')} minutes (the oldest for "
            f"{payload.get('oldest_age_s')} s). Check that `optsync worker` runs and that "
            "Salesforce is reachable (Integrations → Test the connection).",
        )
    if kind == "resolved":
        return (
            "optsync: pushes flow again",
            "The stuck pushes have been sent (or settled); nothing waits past the threshold.",
        )
    return (
        "optsync: test notification",
        "This is a test notification from optsync. If you read it, notifications work.",
    )


def delivery_delay(attempts: int) -> timedelta:
    """Backoff before delivery attempt ``attempts + 1`` (30 s, 60 s, … capped at 1 h)."""
    return timedelta(seconds=min(DELIVERY_CAP_S, DELIVERY_BASE_S * 2 ** max(0, attempts - 1)))


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp + "." + body``): the value of
    the ``X-Optsync-Signature`` header; the timestamp is ``X-Optsync-Timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
