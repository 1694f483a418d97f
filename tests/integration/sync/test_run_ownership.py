"""A run owns itself: once the reaper has marked it failed, its old runner writes nothing.

Issue #12, defect 3: a runner whose run was reaped (missed heartbeats, or a worker
whose clock is minutes off) kept heartbeating, saving its report and finishing; with
its staging rows deleted by the reaper it re-pushed every unsubscribed person, and
"failed" became "succeeded" while the next run was already running.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from optsync.services.sync_run import RunInProgress, SyncRunner, get_report, run_sync, start_run
from optsync.store import runs
from optsync.store.models import SyncRun
from tests.integration.sync.conftest import FAST, add_persons, age_run, ledger_count, remote


def _world(emu, db, clock):
    seed = emu.seed(contacts=4)
    c = seed["contact_ids"]
    emu.control("PATCH", f"records/{c[0]}", {"HasOptedOutOfEmail": True})
    add_persons(
        db,
        clock,
        [
            {"salesforce_id": c[0]},  # to pull
            {"salesforce_id": c[1], "unsubscribed": True},  # to push
            {"salesforce_id": c[2], "unsubscribed": True},  # to push
        ],
    )
    return c


def _status(db, run_id):
    with db.transaction() as s:
        row = s.get(SyncRun, run_id)
        assert row is not None
        return row.status, row.error, row.worker


@pytest.mark.parametrize("lost_before", ["_pull", "_push"])
def test_a_reaped_live_runner_stops_at_once(db, clock, emu, gateway, monkeypatch, lost_before):
    c = _world(emu, db, clock)
    ledger_before = ledger_count(db)
    first = start_run(db, trigger="manual", dry_run=False, now=clock())
    later: list[int] = []
    real = getattr(SyncRunner, lost_before)

    def reaped_first(self):
        # another worker sees no heartbeat for 10 minutes, reaps this run and starts its own
        age_run(db, first, timedelta(minutes=10))
        later.append(start_run(db, trigger="manual", dry_run=False, now=clock()))
        return real(self)

    monkeypatch.setattr(SyncRunner, lost_before, reaped_first)
    report = SyncRunner(db, first, gateway, clock=clock, options=FAST).run()

    status, error, _ = _status(db, first)
    assert status == "failed" and "worker died" in (error or "")
    assert report["status"] == "failed" and "worker died" in (report["error"] or "")
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is False  # the lost runner pushed nothing
    assert remote(emu, c[2])["HasOptedOutOfEmail"] is False
    if lost_before == "_pull":
        assert ledger_count(db) == ledger_before  # and pulled nothing
    assert _status(db, later[0])[0] == "running"  # the new run is untouched

    monkeypatch.undo()
    done = SyncRunner(db, later[0], gateway, clock=clock, options=FAST).run()
    assert done["status"] == "succeeded"
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is True


def test_heartbeat_report_and_finish_write_only_for_the_owner(db, clock):
    run_id = start_run(db, trigger="manual", dry_run=False, now=clock())
    _, _, owner = _status(db, run_id)
    assert owner is not None
    with db.transaction() as s:
        assert runs.heartbeat(s, run_id, "someone-else") == 0
        assert runs.save_report(s, run_id, "someone-else", {"pulled": 9}) == 0
        assert (
            runs.finish_run(
                s, run_id, "someone-else", status="succeeded", error=None, report={}, now=clock()
            )
            == 0
        )
    assert _status(db, run_id)[0] == "running"
    with db.transaction() as s:
        assert runs.heartbeat(s, run_id, owner) == 1
        assert runs.save_report(s, run_id, owner, {"pulled": 1}) == 1
    age_run(db, run_id, timedelta(minutes=10))
    with db.transaction() as s:
        assert runs.reap_stale_runs(s, now=clock(), stale_after=timedelta(minutes=5)) == [run_id]
    with db.transaction() as s:  # reaped: even the owner can no longer write
        assert runs.heartbeat(s, run_id, owner) == 0
        assert (
            runs.finish_run(
                s, run_id, owner, status="succeeded", error=None, report={}, now=clock()
            )
            == 0
        )
    assert _status(db, run_id)[0] == "failed"


def test_each_run_attempt_has_its_own_owner_token(db, clock):
    first = start_run(db, trigger="manual", dry_run=False, now=clock())
    with db.transaction() as s:
        s.get(SyncRun, first).status = "succeeded"
    second = start_run(db, trigger="manual", dry_run=False, now=clock())
    assert _status(db, first)[2] != _status(db, second)[2]


def test_worker_clocks_minutes_apart_do_not_reap_a_live_run(db, clock):
    """Heartbeats and reaping read the database's clock, not each worker's."""
    behind = clock() - timedelta(minutes=10)
    live = start_run(db, trigger="manual", dry_run=False, now=behind)
    with pytest.raises(RunInProgress):
        start_run(db, trigger="manual", dry_run=False, now=clock() + timedelta(minutes=10))
    assert _status(db, live)[0] == "running"


def test_a_runner_given_another_owner_writes_nothing(db, clock, emu, gateway):
    _world(emu, db, clock)
    run_id = start_run(db, trigger="manual", dry_run=False, now=clock())
    report = SyncRunner(db, run_id, gateway, clock=clock, options=FAST, worker="impostor").run()
    assert report["status"] == "running"  # the stored report: the run is not this runner's
    assert _status(db, run_id)[0] == "running"
    assert get_report(db, run_id)["pulled"] == 0


def test_run_sync_still_completes(db, clock, emu, gateway):
    _world(emu, db, clock)
    assert run_sync(db, gateway, clock=clock, options=FAST)["status"] == "succeeded"
