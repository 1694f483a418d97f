"""Starting a run: reap dead runs, then insert the ``running`` row the database allows once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from optsync.clock import Clock
from optsync.errors import UsageError
from optsync.services.sync.options import STALE_AFTER, RunInProgress, SlotTaken
from optsync.services.sync_settings import get_settings
from optsync.store import runs, sync_runs
from optsync.store.db import Database
from optsync.store.models import SyncRun
from optsync.store.records import save_mirror_state


def start_run(
    db: Database,
    *,
    trigger: str,
    dry_run: bool,
    now: datetime,
    scheduled_for: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
    worker: str | None = None,
    clock: Clock | None = None,
    full: bool = False,
) -> int:
    """Create the ``running`` run row and return its id.

    Stale runs are reaped first (by the database's clock). Raises :class:`RunInProgress`
    when another run is running, :class:`SlotTaken` when ``scheduled_for`` already has a
    run (another worker won the race); both come from the database's unique indexes, not
    from a check that could race.

    ``worker`` is the run's owner token (:func:`optsync.store.runs.new_owner`, one per
    attempt); the :class:`~optsync.services.sync.runner.SyncRunner` given the same token,
    or none (it then adopts the row's), is the only one that can write to the run.

    With ``clock``, ``started_at`` is read once the INSERT has passed the unique index:
    by then any previous run has committed its end, so run intervals never overlap even
    when this start had to wait for that run to finish (``now`` was read before).

    ``full``: re-read every record into the mirror (``optsync sync run --full``): the
    mirror is marked untrusted with the run's creation, so the run reads it in full.
    """
    if trigger not in ("schedule", "manual"):
        raise UsageError(f"trigger: {trigger!r} is not schedule or manual.", field="trigger")
    with db.transaction() as session:
        runs.reap_stale_runs(session, now=now, stale_after=stale_after)
        sync_runs.clear_orphan_staging(session)
    try:
        with db.transaction() as session:
            field_name = get_settings(session).salesforce_field
            run = runs.create_run(
                session,
                trigger=trigger,
                dry_run=dry_run,
                field=field_name,
                now=now,
                scheduled_for=scheduled_for,
                worker=worker or runs.new_owner(),
            )
            if clock is not None:
                run.started_at = max(clock(), now)
                session.flush()
            if full:
                save_mirror_state(
                    session, now, trusted=False, reason=f"a full read was asked for (run #{run.id})"
                )
            return int(run.id)
    except IntegrityError:
        with db.transaction() as session:
            if scheduled_for is not None:
                taken = session.scalar(
                    select(SyncRun.id).where(SyncRun.scheduled_for == scheduled_for)
                )
                if taken is not None:
                    raise SlotTaken(scheduled_for) from None
            running = runs.running_run(session)
            raise RunInProgress(running.id if running else None) from None
