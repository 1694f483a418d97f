"""Sync health: the one service function and ``GET /api/v1/health/sync`` (SQLite and
PostgreSQL), with failed runs, failed and stuck pushes; no Salesforce call."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from optsync.domain.optout import Source
from optsync.services.health import sync_health
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.sync_settings import update_settings
from optsync.store.models import OutboxPush, SyncRun


def add_run(s, now, *, status, error=None, dry_run=False, minutes_ago=60):
    run = SyncRun(
        trigger="manual",
        dry_run=dry_run,
        status=status,
        error=error,
        field="HasOptedOutOfEmail",
        started_at=now - timedelta(minutes=minutes_ago),
        finished_at=None if status == "running" else now - timedelta(minutes=minutes_ago - 1),
        report={},
    )
    s.add(run)
    s.flush()
    return run.id


def linked_unsubscribe(s, now, n: int, email: str):
    upsert_person(s, PersonInput(n, email, f"003000000000{n:03d}AAA", "Contact"), now)
    return unsubscribe_email(s, email, source=Source.ADMIN, actor="user:a@example.com", now=now)


def test_a_fresh_install_is_healthy_and_says_so(ctx):
    with ctx.db.transaction() as s:
        health = sync_health(s, ctx.clock())
    assert health.status == "ok" and health.problems == []
    data = health.as_dict()
    assert data["last_success"] is None and data["pushes_waiting"] == 0
    assert data["next_run_at"] is None  # the sync is off
    assert data["live_pull"] == "off"


def test_failed_run_failed_and_stuck_pushes_are_named(ctx, clock):
    now = clock()
    with ctx.db.transaction() as s:
        update_settings(s, {"sync_enabled": True}, actor="test", now=now)
        ok_id = add_run(s, now, status="succeeded", minutes_ago=120)
        add_run(s, now, status="succeeded", dry_run=True, minutes_ago=30)  # dry: not counted
        bad_id = add_run(s, now, status="failed", error="Setup check failed: no field.")
        old = linked_unsubscribe(s, now - timedelta(minutes=40), 1, "old@example.com")
        linked_unsubscribe(s, now - timedelta(minutes=2), 2, "new@example.com")
        failed = linked_unsubscribe(s, now, 3, "bad@example.com")
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == failed.person.id)
            .values(state="failed", last_error_code="FIELD_INTEGRITY_EXCEPTION")
        )
    with ctx.db.transaction() as s:
        health = sync_health(s, now)
    data = health.as_dict()
    assert health.status == "failing"
    assert data["last_success"]["id"] == ok_id
    assert data["last_run"] == {
        "id": bad_id,
        "status": "failed",
        "finished_at": data["last_run"]["finished_at"],
        "error": "Setup check failed: no field.",
    }
    assert data["pushes_waiting"] == 2
    assert data["oldest_waiting_age_s"] == 40 * 60
    assert data["failed_pushes"] == 1 and data["stuck_pushes"] == 1
    assert data["next_run_at"] is not None and data["timezone"] == "America/Los_Angeles"
    kinds = [p["kind"] for p in data["problems"]]
    assert kinds == ["failed_run", "failed_pushes", "stuck_pushes", "live_pull"]
    assert data["problems"][1]["href"].endswith("/unsubscribes/failures")  # the Failures tab
    assert old.person.id  # the stuck one is the oldest


def test_the_api_answers_the_same_for_any_token(client, ctx, clock, member_headers):
    with ctx.db.transaction() as s:
        add_run(s, clock(), status="failed", error="boom")
    r = client.get("/api/v1/health/sync", headers=member_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failing" and body["last_run"]["error"] == "boom"
    assert client.get("/api/v1/health/sync").status_code == 401
