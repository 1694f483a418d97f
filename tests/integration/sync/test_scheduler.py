"""The scheduler with a FakeClock: DST, catch-up once, live settings, racing workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from optsync.bootstrap import Context
from optsync.errors import UsageError
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.store.models import SyncRun
from optsync.worker.scheduler import maybe_run_scheduled, run_scheduler_loop
from tests.integration.sync.conftest import FAST, set_field


def no_gateway():
    raise UsageError("no Salesforce connection; run `optsync salesforce connect`")


def _ctx(db, clock) -> Context:
    return Context(settings=load_settings(), db=db, clock=clock)


def _tick_until(ctx, clock, end, minutes=30):
    fired = []
    while clock() < end:
        report = maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST)
        if report is not None:
            fired.append(report["scheduled_for"])
        clock.advance(minutes=minutes)
    return fired


def test_nothing_runs_while_sync_is_off(db, clock):
    set_field(db, clock, sync_enabled=False)
    clock.advance(days=2)
    assert maybe_run_scheduled(_ctx(db, clock), clock(), gateway=no_gateway) is None


def test_spring_forward_2026_runs_at_20_00_local_every_day(db, clock):
    clock.now = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)  # 0 20 * * * America/Los_Angeles
    fired = _tick_until(_ctx(db, clock), clock, datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    assert fired == [
        "2026-03-07T04:00:00+00:00",  # Fri 20:00 PST
        "2026-03-08T04:00:00+00:00",  # Sat 20:00 PST
        "2026-03-09T03:00:00+00:00",  # Sun 20:00 PDT (clocks went forward that morning)
        "2026-03-10T03:00:00+00:00",
    ]


def test_fall_back_2026_runs_a_repeated_time_once(db, clock):
    clock.now = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True, schedule="30 1 * * *")
    fired = _tick_until(
        _ctx(db, clock), clock, datetime(2026, 11, 2, 12, 0, tzinfo=UTC), minutes=15
    )
    assert fired == [
        "2026-10-31T08:30:00+00:00",  # 01:30 PDT
        "2026-11-01T08:30:00+00:00",  # 01:30 PDT, first of the two 01:30s; not again at 09:30
        "2026-11-02T09:30:00+00:00",  # 01:30 PST
    ]


def test_missed_runs_catch_up_once(db, clock):
    clock.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    clock.now = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # the worker was down for 4 nights
    ctx = _ctx(db, clock)
    first = maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST)
    assert first is not None and first["scheduled_for"] == "2026-03-05T04:00:00+00:00"
    clock.advance(minutes=1)
    assert maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST) is None
    with db.transaction() as s:
        assert len(list(s.scalars(select(SyncRun.id)))) == 1


def test_settings_changes_apply_without_restart(db, clock):
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    ctx = _ctx(db, clock)
    fired = _tick_until(ctx, clock, datetime(2026, 6, 2, 12, 0, tzinfo=UTC))
    assert fired == ["2026-06-02T03:00:00+00:00"]
    set_field(db, clock, sync_enabled=True, schedule="0 6 * * *", timezone="UTC")
    fired = _tick_until(ctx, clock, datetime(2026, 6, 3, 12, 0, tzinfo=UTC))
    # the edit does not move the schedule's start (enabled_at): today's 06:00 UTC slot of
    # the new schedule has not run, so it catches up once at once, then runs nightly
    assert fired == ["2026-06-02T06:00:00+00:00", "2026-06-03T06:00:00+00:00"]
    set_field(db, clock, sync_enabled=False)
    assert _tick_until(ctx, clock, datetime(2026, 6, 5, 12, 0, tzinfo=UTC)) == []


def test_a_scheduled_run_waits_for_a_manual_one(db, clock):
    from optsync.services.sync_run import start_run

    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    clock.now = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    manual = start_run(db, trigger="manual", dry_run=False, now=clock())
    ctx = _ctx(db, clock)
    assert maybe_run_scheduled(ctx, clock(), gateway=no_gateway) is None
    with db.transaction() as s:
        row = s.get(SyncRun, manual)
        row.status = "succeeded"
    clock.advance(seconds=30)
    report = maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST)
    assert report is not None and report["scheduled_for"] == "2026-06-02T03:00:00+00:00"


@pytest.mark.postgres
def test_two_racing_schedulers_start_exactly_one_run(pg_db, postgres_url, clock):
    """The race is meaningful with concurrent writers: a PostgreSQL deployment."""
    db, database_url = pg_db, postgres_url
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    clock.now = datetime(2026, 6, 2, 3, 0, 5, tzinfo=UTC)
    for _attempt in range(5):
        barrier = threading.Barrier(2)
        results: list[object] = []
        errors: list[BaseException] = []

        def worker(barrier=barrier, results=results, errors=errors):
            own = Database(database_url)
            try:
                ctx = Context(settings=load_settings(), db=own, clock=clock)
                barrier.wait()
                results.append(maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST))
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)
            finally:
                own.dispose()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert sum(r is not None for r in results) == 1
        with db.transaction() as s:
            slots = list(s.scalars(select(SyncRun.scheduled_for)))
        assert len(slots) == len(set(slots))
        clock.advance(days=1)
    with db.transaction() as s:
        assert len(list(s.scalars(select(SyncRun.id)))) == 5


def test_scheduler_loop_runs_until_stopped(db, clock):
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    clock.now = datetime(2026, 6, 2, 3, 0, 5, tzinfo=UTC)
    stop = threading.Event()
    ctx = _ctx(db, clock)
    thread = threading.Thread(
        target=run_scheduler_loop,
        args=(ctx, stop, 0.01),
        kwargs={"gateway": no_gateway, "options": FAST},
    )
    thread.start()
    try:
        for _ in range(500):
            with db.transaction() as s:
                if s.scalars(select(SyncRun.id)).first() is not None:
                    break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    with db.transaction() as s:
        assert len(list(s.scalars(select(SyncRun.id)))) == 1


def test_a_settings_edit_after_a_missed_night_does_not_skip_it(db, clock):
    """Issue #12, defect 5: the schedule starts when the sync was switched on, not at the
    last edit. The worker was down at 20:00; an admin changed the field at 20:30; the
    night must still run (once) when the worker comes back."""
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    clock.now = datetime(2026, 6, 2, 3, 30, tzinfo=UTC)  # 20:30 PDT, the 20:00 run missed
    set_field(db, clock, "sales_opt_out", sync_enabled=True)
    clock.now = datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
    ctx = _ctx(db, clock)
    report = maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST)
    assert report is not None and report["scheduled_for"] == "2026-06-02T03:00:00+00:00"
    clock.advance(minutes=30)
    assert maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST) is None


def test_an_edit_around_the_slot_still_runs_that_night(db, clock):
    """Edited just before 20:00 (schedule unchanged, zone re-saved): 20:00 still runs."""
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=True)
    ctx = _ctx(db, clock)
    clock.now = datetime(2026, 6, 2, 2, 59, tzinfo=UTC)
    assert maybe_run_scheduled(ctx, clock(), gateway=no_gateway, options=FAST) is None
    clock.now = datetime(2026, 6, 2, 3, 0, 10, tzinfo=UTC)  # the worker is 20 s late ...
    set_field(db, clock, sync_enabled=True, timezone="America/Los_Angeles")  # ... an edit
    clock.advance(seconds=20)
    fired = _tick_until(ctx, clock, datetime(2026, 6, 3, 12, 0, tzinfo=UTC))
    assert fired == ["2026-06-02T03:00:00+00:00", "2026-06-03T03:00:00+00:00"]


def test_switching_the_sync_on_starts_the_schedule_and_only_that_moves_it(db, clock):
    from optsync.store.models import SyncSettings

    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    set_field(db, clock, sync_enabled=False)
    clock.advance(hours=1)
    set_field(db, clock, sync_enabled=True)
    on_at = clock()
    clock.advance(hours=1)
    set_field(db, clock, "sales_opt_out", sync_enabled=True, schedule="0 6 * * *")
    with db.transaction() as s:
        assert s.get(SyncSettings, 1).enabled_at == on_at
    clock.advance(hours=1)
    set_field(db, clock, sync_enabled=False)
    clock.advance(hours=1)
    set_field(db, clock, sync_enabled=True)
    with db.transaction() as s:
        assert s.get(SyncSettings, 1).enabled_at == clock()
    # switched on at 16:00 UTC after the 06:00 UTC slot: that slot was never promised
    assert maybe_run_scheduled(_ctx(db, clock), clock(), gateway=no_gateway) is None


def test_the_worker_imports_the_scheduler_without_swallowing_errors(monkeypatch):
    """Issue #12, defect 6: a broken scheduler module must fail loudly, not switch the
    nightly sync off in silence."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "optsync.worker.scheduler", None)  # import fails
    monkeypatch.delitem(sys.modules, "optsync.worker.runner", raising=False)
    with pytest.raises(ImportError):
        importlib.import_module("optsync.worker.runner")
