"""The nightly sync against the emulator, on SQLite and PostgreSQL, by REST and by Bulk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from optsync.domain.failures import FIX_DELETED, FIX_FIELD_READ_ONLY, FIX_INVALID_FIELD
from optsync.domain.optout import Source
from optsync.services.optouts import resubscribe_email
from optsync.services.sync_run import (
    RunInProgress,
    SyncRunner,
    get_report,
    history,
    run_sync,
    start_run,
)
from optsync.store.models import (
    LedgerEntry,
    OutboxPush,
    SyncRemoteOptOut,
    SyncRun,
    SyncRunFailure,
)
from tests.integration.sync.conftest import (
    BULK,
    FAST,
    add_persons,
    age_run,
    ledger_count,
    person,
    remote,
    set_field,
)

REPORT_KEYS = {
    "id",
    "trigger",
    "dry_run",
    "status",
    "error",
    "field",
    "started_at",
    "finished_at",
    "duration_s",
    "remote_opted_out",
    "local_unsubscribed",
    "pulled",
    "pushed",
    "failed",
    "failures",
    "not_linked",
    "reopted_out",
    "api_calls",
}
PATHS = {"rest": FAST, "bulk": BULK}
FIELDS = {"email_opt_out": "HasOptedOutOfEmail", "sales_opt_out": "Sales_Opt_Out__c"}


def _world(emu, db, clock, field: str):
    """4 Contacts + 4 Leads; two set remotely, two unsubscribed here, one not linked."""
    seed = emu.seed(contacts=4, leads=4)
    c, le = seed["contact_ids"], seed["lead_ids"]
    for rid in (c[0], le[0], c[3]):
        emu.control("PATCH", f"records/{rid}", {field: True})
    ids = add_persons(
        db,
        clock,
        [
            {"salesforce_id": c[0]},  # pull (Contact)
            {"salesforce_id": le[0]},  # pull (Lead)
            {"salesforce_id": c[1], "unsubscribed": True},  # push (Contact)
            {"salesforce_id": le[1], "unsubscribed": True},  # push (Lead)
            {"salesforce_id": c[2]},  # nothing: subscribed on both sides
            {"salesforce_id": c[3], "unsubscribed": True},  # nothing: opted out on both sides
            {"salesforce_id": None, "unsubscribed": True},  # not linked
        ],
    )
    return c, le, ids


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("choice", sorted(FIELDS))
def test_both_directions_then_nothing(db, clock, emu, gateway, path, choice):
    field = FIELDS[choice]
    set_field(db, clock, choice, sync_enabled=True)
    c, le, ids = _world(emu, db, clock, field)
    before_ledger = ledger_count(db)

    report = run_sync(db, gateway, clock=clock, options=PATHS[path])

    assert set(report) >= REPORT_KEYS
    assert report["status"] == "succeeded", report["error"]
    assert report["field"] == field
    assert (report["remote_opted_out"], report["local_unsubscribed"]) == (3, 4)
    assert (report["pulled"], report["pushed"], report["not_linked"]) == (2, 2, 1)
    assert report["failed"] == {} and report["failures"] == []
    assert report["fetch_via"] == {"Contact": path, "Lead": path}
    assert report["push_via"] == (["bulk"] if path == "bulk" else ["composite"])
    assert report["api_calls"] > 0
    # pulled: unsubscribed locally from Salesforce, one ledger entry each, no push queued
    for pid in ids[:2]:
        p = person(db, pid)
        assert p.unsubscribed and p.unsubscribe_source == "salesforce"
    assert ledger_count(db) == before_ledger + 2
    with db.transaction() as s:
        entries = list(s.scalars(select(LedgerEntry).where(LedgerEntry.person_id.in_(ids[:2]))))
        assert {(e.kind, e.source) for e in entries} == {("unsubscribe", "salesforce")}
        assert not list(s.scalars(select(OutboxPush).where(OutboxPush.person_id.in_(ids[:2]))))
        # the run's own pushes are recorded as sent, never queued for the worker
        assert {(p.state, p.target_id) for p in s.scalars(select(OutboxPush))} == {
            ("sent", c[1]),
            ("sent", le[1]),
        }
        assert not list(s.scalars(select(SyncRemoteOptOut)))  # staging cleaned up
    # pushed: the selected field, and only it
    for rid in (c[1], le[1]):
        rec = remote(emu, rid)
        assert rec[field] is True
        other = "Sales_Opt_Out__c" if field == "HasOptedOutOfEmail" else "HasOptedOutOfEmail"
        assert rec[other] is False
    assert not person(db, ids[4]).unsubscribed
    assert remote(emu, c[2])[field] is False

    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert again["status"] == "succeeded"
    assert (again["pulled"], again["pushed"], again["failed"]) == (0, 0, {})
    assert again["remote_opted_out"] == 5
    assert ledger_count(db) == before_ledger + 2

    stored = get_report(db, report["id"])
    assert stored["pulled"] == 2 and stored["status"] == "succeeded"
    assert [r["id"] for r in history(db)] == [again["id"], report["id"]]


def test_dry_run_changes_nothing_and_reports_the_same(db, clock, emu, gateway):
    c, _le, ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    before = ledger_count(db)
    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    assert dry["status"] == "succeeded" and dry["dry_run"] is True
    assert (dry["pulled"], dry["pushed"], dry["not_linked"]) == (2, 2, 1)
    assert ledger_count(db) == before
    assert not person(db, ids[0]).unsubscribed
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is False
    real = run_sync(db, gateway, clock=clock, options=FAST)
    for key in ("remote_opted_out", "local_unsubscribed", "pulled", "pushed", "not_linked"):
        assert real[key] == dry[key], key


@pytest.mark.parametrize("how", ["hidden", "read_only"])
def test_unusable_field_fails_cleanly_with_the_fix(db, clock, emu, gateway, how):
    set_field(db, clock, "sales_opt_out", sync_enabled=True)
    c, _le, ids = _world(emu, db, clock, "Sales_Opt_Out__c")
    access = {"visible": False} if how == "hidden" else {"visible": True, "updateable": False}
    emu.control("PUT", "fields/Lead/Sales_Opt_Out__c", access)
    before = ledger_count(db)

    report = run_sync(db, gateway, clock=clock, options=FAST)

    assert report["status"] == "failed"
    assert "Lead" in report["error"]
    assert (FIX_INVALID_FIELD if how == "hidden" else FIX_FIELD_READ_ONLY) in report["error"]
    assert (report["pulled"], report["pushed"]) == (0, 0)
    assert ledger_count(db) == before
    assert not person(db, ids[0]).unsubscribed
    assert remote(emu, c[1])["Sales_Opt_Out__c"] is False
    with db.transaction() as s:
        row = s.get(SyncRun, report["id"])
        assert row is not None and row.status == "failed" and row.error == report["error"]


def test_no_connection_fails_the_run_with_the_fix(db, clock):
    from optsync.errors import UsageError

    def no_gateway():
        raise UsageError("no Salesforce connection; run `optsync salesforce connect`")

    report = run_sync(db, no_gateway, clock=clock, options=FAST)
    assert report["status"] == "failed"
    assert "optsync salesforce connect" in report["error"]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_converted_lead_is_followed_and_deleted_record_listed(db, clock, emu, gateway, path):
    seed = emu.seed(contacts=3, leads=3)
    c, le = seed["contact_ids"], seed["lead_ids"]
    new_contact = emu.control("POST", f"records/{le[0]}/convert")["contact_id"]
    emu.control("DELETE", f"records/{c[0]}")
    ids = add_persons(
        db,
        clock,
        [
            {"salesforce_id": le[0], "unsubscribed": True},  # converted Lead
            {"salesforce_id": c[0], "unsubscribed": True},  # deleted Contact
            {"salesforce_id": c[1], "unsubscribed": True},  # fine
        ],
    )

    report = run_sync(db, gateway, clock=clock, options=PATHS[path])

    assert report["status"] == "succeeded", report["error"]
    assert report["pushed"] == 2
    assert report["failed"] == {"ENTITY_IS_DELETED": 1}
    [failure] = report["failures"]
    assert failure == {
        "person_id": ids[1],
        "salesforce_id": c[0],
        "code": "ENTITY_IS_DELETED",
        "message": failure["message"],
        "fix": FIX_DELETED,
    }
    assert remote(emu, new_contact)["HasOptedOutOfEmail"] is True
    moved = person(db, ids[0])
    assert (moved.salesforce_id, moved.salesforce_object) == (new_contact, "Contact")
    with db.transaction() as s:
        stored = list(s.scalars(select(SyncRunFailure)))
        assert [(f.person_id, f.code) for f in stored] == [(ids[1], "ENTITY_IS_DELETED")]

    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert (again["pulled"], again["pushed"]) == (0, 0)
    assert again["failed"] == {"ENTITY_IS_DELETED": 1}  # still needs an admin


def test_resubscribes_never_sync(db, clock, emu, gateway):
    seed = emu.seed(contacts=3)
    c = seed["contact_ids"]
    emu.control("PATCH", f"records/{c[0]}", {"HasOptedOutOfEmail": True})
    ids = add_persons(
        db,
        clock,
        [
            {"email": "ann@example.com", "salesforce_id": c[0], "unsubscribed": True},
            {"email": "bob@example.com", "salesforce_id": c[1], "unsubscribed": True},
            {"email": "cy@example.com", "salesforce_id": c[2]},
        ],
    )
    first = run_sync(db, gateway, clock=clock, options=FAST)
    assert (first["pulled"], first["pushed"]) == (0, 1)

    # Here: Ann is re-subscribed, but Salesforce still has the field -> opted out again.
    clock.advance(hours=1)
    with db.transaction() as s:
        resubscribe_email(
            s,
            "ann@example.com",
            source=Source.ADMIN,
            actor="admin",
            now=clock(),
            reason="asked by phone",
        )
    # There: Bob's field and Cy's are cleared / never set -> nobody is re-subscribed here.
    emu.control("PATCH", f"records/{c[1]}", {"HasOptedOutOfEmail": False})
    clock.advance(hours=1)

    second = run_sync(db, gateway, clock=clock, options=FAST)

    assert second["reopted_out"] == [{"person_id": ids[0], "email": "ann@example.com"}]
    assert (second["pulled"], second["pushed"]) == (1, 1)
    assert person(db, ids[0]).unsubscribed
    assert person(db, ids[1]).unsubscribed  # a cleared field never re-subscribes anyone
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is True  # and is set again
    assert not person(db, ids[2]).unsubscribed

    third = run_sync(db, gateway, clock=clock, options=FAST)
    assert (third["pulled"], third["pushed"], third["reopted_out"]) == (0, 0, [])


def test_one_run_at_a_time(db, clock):
    run_id = start_run(db, trigger="manual", dry_run=False, now=clock())
    with pytest.raises(RunInProgress, match=f"already in progress \\(#{run_id}\\)"):
        start_run(db, trigger="manual", dry_run=True, now=clock())


def test_a_dead_workers_run_is_reaped_and_the_next_run_completes(db, clock, emu, gateway):
    _c, _le, _ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    dead = start_run(db, trigger="manual", dry_run=False, now=clock())
    # the reaper reads the database's clock: age the heartbeat there, not the FakeClock
    age_run(db, dead, timedelta(minutes=2))
    with pytest.raises(RunInProgress):
        start_run(db, trigger="manual", dry_run=False, now=clock())
    age_run(db, dead, timedelta(minutes=10))
    report = run_sync(db, gateway, clock=clock, options=FAST)
    assert report["status"] == "succeeded" and report["pulled"] == 2
    old = get_report(db, dead)
    assert old["status"] == "failed" and "worker died" in old["error"]


def test_killed_after_the_pull_leaves_both_sides_consistent(db, clock, emu, gateway, monkeypatch):
    c, _le, ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    before = ledger_count(db)

    def crash(self):
        raise RuntimeError("power cut")

    monkeypatch.setattr(SyncRunner, "_push", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run_sync(db, gateway, clock=clock, options=FAST)
    monkeypatch.undo()

    with db.transaction() as s:
        crashed = s.scalars(select(SyncRun)).one()
        assert crashed.status == "failed" and "power cut" in (crashed.error or "")
    # the pull committed with its ledger entries; nothing was pushed yet
    assert person(db, ids[0]).unsubscribed and ledger_count(db) == before + 2
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is False

    clock.advance(minutes=1)
    resumed = run_sync(db, gateway, clock=clock, options=FAST)
    assert resumed["status"] == "succeeded"
    assert (resumed["pulled"], resumed["pushed"]) == (0, 2)
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is True
    assert ledger_count(db) == before + 2


def test_killed_mid_pull_commits_whole_chunks_only(db, clock, emu, gateway, monkeypatch):
    """A crash between pull chunks: each chunk's state and ledger are both there or not."""
    from optsync.store import sync_runs

    seed = emu.seed(contacts=6)
    for rid in seed["contact_ids"]:
        emu.control("PATCH", f"records/{rid}", {"HasOptedOutOfEmail": True})
    ids = add_persons(db, clock, [{"salesforce_id": rid} for rid in seed["contact_ids"]])
    real = sync_runs.apply_pull_chunk
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_runs, "apply_pull_chunk", flaky)
    options = FAST.__class__(**{**FAST.__dict__, "pull_chunk": 2})
    with pytest.raises(RuntimeError):
        run_sync(db, gateway, clock=clock, options=options)
    monkeypatch.undo()
    done = [pid for pid in ids if person(db, pid).unsubscribed]
    assert len(done) == 2
    assert all(ledger_count(db, pid) == (1 if pid in done else 0) for pid in ids)
    resumed = run_sync(db, gateway, clock=clock, options=options)
    assert resumed["pulled"] == 4
    assert all(ledger_count(db, pid) == 1 for pid in ids)


def test_stale_threshold_is_a_parameter(db, clock):
    first = start_run(db, trigger="manual", dry_run=False, now=clock())
    age_run(db, first, timedelta(seconds=90))
    second = start_run(
        db, trigger="manual", dry_run=False, now=clock(), stale_after=timedelta(minutes=1)
    )
    assert second != first


@pytest.mark.parametrize("path", sorted(PATHS))
def test_merged_record_is_followed_to_its_master(db, clock, emu, gateway, path):
    seed = emu.seed(contacts=2)
    master, loser = seed["contact_ids"]
    emu.control("POST", f"records/{loser}/merge", {"master_id": master})
    [pid] = add_persons(db, clock, [{"salesforce_id": loser, "unsubscribed": True}])

    report = run_sync(db, gateway, clock=clock, options=PATHS[path])

    assert (report["pushed"], report["failed"], report["followed"]) == (1, {}, 1)
    assert remote(emu, master)["HasOptedOutOfEmail"] is True
    assert person(db, pid).salesforce_id == master
    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert (again["pulled"], again["pushed"]) == (0, 0)


def test_bulk_calls_survive_an_expired_session(db, clock, emu, gateway, monkeypatch):
    from optsync.salesforce.bulk import BulkApi

    _c, _le, _ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    real = BulkApi.start_query

    def expire_then_query(self, query):
        emu.control("POST", "sessions/expire")
        return real(self, query)

    monkeypatch.setattr(BulkApi, "start_query", expire_then_query)
    report = run_sync(db, gateway, clock=clock, options=BULK)
    assert report["status"] == "succeeded", report["error"]
    assert (report["pulled"], report["pushed"]) == (2, 2)
    assert gateway.session_renewals >= 1
    counters = emu.control("GET", "counters")
    assert report["api_calls"] == counters["total"]


CHILD = r"""
import sys, time
from pathlib import Path
from optsync.clock import utcnow
from optsync.salesforce.connection import ConnectionConfig
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.sync_run import SyncOptions, SyncRunner, run_sync
from optsync.store.db import Database

url, login, cid, secret, ca, marker = sys.argv[1:7]

def stall(self):
    Path(marker).write_text("pulled")
    time.sleep(600)

SyncRunner._push = stall
config = ConnectionConfig(auth="client_credentials", login_url=login, client_id=cid,
                          client_secret=secret, ca_bundle=ca).validated()
run_sync(Database(url), SalesforceGateway(config), clock=utcnow,
         options=SyncOptions(heartbeat_every=3600))
"""


def test_a_killed_worker_process_leaves_both_sides_consistent(
    db, database_url, clock, emu, gateway, tmp_path
):
    import signal
    import subprocess
    import sys
    import time

    c, _le, ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    before = ledger_count(db)
    marker = tmp_path / "pulled"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            database_url,
            emu.login_url,
            emu.client_id,
            emu.client_secret,
            emu.ca_bundle,
            str(marker),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "child ended early"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)

    with db.transaction() as s:
        killed = s.scalars(select(SyncRun)).one()
        assert killed.status == "running"  # nobody marked it: the process just vanished
    assert person(db, ids[0]).unsubscribed and ledger_count(db) == before + 2
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is False

    age_run(db, killed.id, timedelta(minutes=6))
    resumed = run_sync(db, gateway, clock=clock, options=FAST)
    assert resumed["status"] == "succeeded"
    assert (resumed["pulled"], resumed["pushed"]) == (0, 2)
    assert remote(emu, c[1])["HasOptedOutOfEmail"] is True
    assert "worker died" in (get_report(db, killed.id)["error"] or "")
    assert ledger_count(db) == before + 2
