"""A dry run shows its work: the records it would pull and push, the first 100 in the
report (``would_pull``, ``would_push``), every one stored for "all as CSV"."""

from __future__ import annotations

from optsync.services.sync import options as sync_options
from optsync.services.sync_run import run_sync
from optsync.store import sync_runs
from tests.integration.sync.conftest import FAST
from tests.integration.sync.test_sync_run import _world


def test_a_dry_run_lists_what_it_would_pull_and_push(db, clock, emu, gateway):
    c, le, ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    assert dry["status"] == "succeeded"
    assert [(r["person_id"], r["salesforce_id"], r["object"]) for r in dry["would_pull"]] == [
        (ids[0], c[0], "Contact"),
        (ids[1], le[0], "Lead"),
    ]
    assert [(r["person_id"], r["salesforce_id"]) for r in dry["would_push"]] == [
        (ids[2], c[1]),
        (ids[3], le[1]),
    ]
    assert all("@" in r["email"] for r in dry["would_pull"] + dry["would_push"])
    assert dry["preview_listed"] == 100
    with db.transaction() as s:
        stored = sync_runs.preview_rows(s, dry["id"])
    assert len(stored) == 4  # kept after the run's staging rows are gone
    real = run_sync(db, gateway, clock=clock, options=FAST)
    assert "would_pull" not in real  # a real run does, it does not list


def test_the_report_keeps_the_first_n_and_the_table_all(db, clock, emu, gateway, monkeypatch):
    from optsync.services.sync import runner

    monkeypatch.setattr(runner, "PREVIEW_LISTED", 1)
    assert sync_options.PREVIEW_LISTED == 100
    _world(emu, db, clock, "HasOptedOutOfEmail")
    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    assert len(dry["would_pull"]) == 1 and len(dry["would_push"]) == 1
    assert dry["pulled"] == 2 and dry["preview_listed"] == 1
    with db.transaction() as s:
        assert len(sync_runs.preview_rows(s, dry["id"], "pull")) == 2
