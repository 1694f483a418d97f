"""The sync scheduler: start the nightly run when its time has come, exactly once.

Every tick (30 s) each worker reads the settings afresh — so a changed schedule, time
zone or the on/off switch takes effect without a restart — and asks the pure
:func:`optsync.domain.schedule.due_run` whether a scheduled instant has passed without a
run. The answer is recorded as the run's ``scheduled_for``, which is unique in the
database: when several workers see the same due instant, exactly one INSERT wins and
the others get an integrity error and do nothing. No clock comparison or lock in this
process is needed for that, so it holds across machines.

The schedule starts at ``sync_settings.enabled_at``, when the sync was switched on:
turning it on at 21:00 does not immediately run the 20:00 slot that was never promised,
while editing the schedule, the zone or the field later does not move the start, so a
night missed or edited around still runs (once). A worker that was down for three
nights runs once when it comes back (``due_run`` returns only the latest missed instant).

Each scheduled run gets its own owner token (:func:`optsync.store.runs.new_owner`), given
to both :func:`start_run` and the :class:`SyncRunner`, so the runner writes to its run
only while it still owns it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from optsync.bootstrap import Context
from optsync.domain.schedule import ScheduleError, due_run
from optsync.salesforce.gateway import LONG_JOB_RETRIES, SalesforceGateway, open_gateway
from optsync.services.notifications.dispatch import notify_tick
from optsync.services.retention import prune_now
from optsync.services.sync_run import (
    RunInProgress,
    SlotTaken,
    SyncOptions,
    SyncRunner,
    start_run,
)
from optsync.services.sync_settings import get_settings
from optsync.store import runs
from optsync.store.models import SyncSettings

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0

GatewayFactory = Callable[[], SalesforceGateway]


def due_instant(ctx: Context, now: datetime) -> datetime | None:
    """The scheduled instant to run now, or ``None`` (sync off, nothing due)."""
    with ctx.db.transaction() as session:
        settings = get_settings(session)
        if not settings.sync_enabled:
            return None
        row = session.get(SyncSettings, 1)
        if row is None:  # pragma: no cover - sync_enabled implies a stored row
            return None
        last = runs.last_scheduled_for(session)
        enabled_at = row.enabled_at or row.updated_at  # rows switched on before 0004
    try:
        return due_run(settings.schedule, settings.timezone, last, now, enabled_at)
    except ScheduleError as exc:  # stored by an older version; never crash the worker
        log.error("the stored sync schedule is unusable", extra={"error": str(exc)})
        return None


def maybe_run_scheduled(
    ctx: Context,
    now: datetime,
    *,
    gateway: GatewayFactory | None = None,
    options: SyncOptions | None = None,
) -> dict[str, Any] | None:
    """Start and carry out the due scheduled run, if any; returns its report.

    Returns ``None`` when nothing is due, when another worker won this instant, or when
    another run (a manual one) is still running — then the instant stays due and the
    next tick after that run ends picks it up.
    """
    instant = due_instant(ctx, now)
    if instant is None:
        return None
    options = options or SyncOptions()
    owner = runs.new_owner()
    try:
        run_id = start_run(
            ctx.db,
            trigger="schedule",
            dry_run=False,
            now=now,
            scheduled_for=instant,
            stale_after=options.stale_after,
            worker=owner,
            clock=ctx.clock,
        )
    except SlotTaken:
        log.info(
            "another worker started this scheduled sync",
            extra={"scheduled_for": instant.isoformat()},
        )
        return None
    except RunInProgress as exc:
        log.info(
            "a sync is already running; the scheduled one waits",
            extra={"running": exc.run_id, "scheduled_for": instant.isoformat()},
        )
        return None
    log.info(
        "starting the scheduled sync",
        extra={"run_id": run_id, "scheduled_for": instant.isoformat()},
    )
    factory = gateway or (lambda: open_gateway(ctx, retries=LONG_JOB_RETRIES))
    runner = SyncRunner(ctx.db, run_id, factory, clock=ctx.clock, options=options, worker=owner)
    report = runner.run()
    log.info(
        "scheduled sync finished",
        extra={
            "run_id": run_id,
            "status": report["status"],
            "pulled": report["pulled"],
            "pushed": report["pushed"],
            "api_calls": report["api_calls"],
        },
    )
    return report


def notify_now(ctx: Context) -> None:
    """Announce failed runs and stuck pushes (docs/sync.md "Notifications"); a failing
    tick is logged and retried on the next one."""
    try:
        notify_tick(
            ctx.db,
            secret_key=ctx.settings.resolved_secret_key,
            base_url=ctx.settings.base_url,
            now=ctx.clock(),
        )
    except Exception:
        log.exception("notification tick failed; trying again next tick")


def run_scheduler_loop(
    ctx: Context,
    stop: threading.Event,
    tick_s: float = 30,
    *,
    gateway: GatewayFactory | None = None,
    options: SyncOptions | None = None,
) -> None:
    """Tick until ``stop`` is set; a failing tick is logged and the loop goes on. Once an
    hour a tick also prunes old working data (``store.retention``)."""
    pruned_at: float | None = None
    while not stop.is_set():
        try:
            maybe_run_scheduled(ctx, ctx.clock(), gateway=gateway, options=options)
        except Exception:  # a database blip must not kill the worker
            log.exception("scheduler tick failed; trying again next tick")
        notify_now(ctx)
        if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY_S:
            pruned_at = time.monotonic()
            try:
                done = prune_now(ctx.db, ctx.settings, ctx.clock())
                if done.pushes or done.run_failures:
                    log.info(
                        "pruned old working data",
                        extra={"pushes": done.pushes, "run_failures": done.run_failures},
                    )
            except Exception:
                log.exception("pruning failed; trying again in an hour")
        stop.wait(tick_s)
