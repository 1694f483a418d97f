"""``/api/v1/sync/runs`` and ``/api/v1/salesforce/check`` against the emulator."""

from __future__ import annotations

import time

from optsync.salesforce.connection import save_connection
from optsync.services.persons import PersonInput, upsert_person
from tests.integration.salesforce.conftest import config_for
from tests.integration.web.conftest import assert_error


def connect(ctx, emu) -> None:
    with ctx.db.transaction() as s:
        save_connection(s, config_for(emu), ctx.settings.resolved_secret_key, now=ctx.clock())


def wait_done(client, headers, run_id: int) -> dict:
    for _ in range(200):
        report = client.get(f"/api/v1/sync/runs/{run_id}", headers=headers).json()
        if report["status"] != "running":
            return report
        time.sleep(0.05)
    raise AssertionError("the run did not finish")


def test_start_list_and_read_a_run(client, ctx, emu, admin_headers, member_headers):
    connect(ctx, emu)
    [contact] = emu.seed(contacts=1, opted_out_fraction=1.0)["contact_ids"]
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(1, "ann@example.com", contact, "Contact"), ctx.clock())
    assert_error(
        client.post("/api/v1/sync/runs", json={}, headers=member_headers), 403, "forbidden"
    )
    dry = client.post("/api/v1/sync/runs", json={"dry_run": True}, headers=admin_headers)
    assert dry.status_code == 202 and dry.json()["status"] == "running"
    report = wait_done(client, admin_headers, dry.json()["id"])
    assert report["status"] == "succeeded" and report["dry_run"] is True
    assert report["pulled"] == 1  # what a real run would pull
    real = client.post("/api/v1/sync/runs", json={"dry_run": False}, headers=admin_headers)
    report = wait_done(client, admin_headers, real.json()["id"])
    assert (report["status"], report["pulled"], report["field"]) == (
        "succeeded",
        1,
        "HasOptedOutOfEmail",
    )
    assert report["mirror"]["read"] == "incremental"  # the dry run read every record
    assert report["records_set"] == {} and report["not_in_salesforce"] == 0
    full = client.post("/api/v1/sync/runs", json={"full": True}, headers=admin_headers)
    assert wait_done(client, admin_headers, full.json()["id"])["mirror"]["read"] == "full"
    assert_error(
        client.post("/api/v1/sync/runs", json={"full": "yes"}, headers=admin_headers),
        422,
        "validation_error",
        "full",
    )
    runs = client.get("/api/v1/sync/runs?limit=5", headers=member_headers).json()["runs"]
    assert [r["id"] for r in runs] == [full.json()["id"], real.json()["id"], dry.json()["id"]]
    assert_error(client.get("/api/v1/sync/runs/999999", headers=admin_headers), 404, "not_found")


def test_a_second_run_while_one_runs_is_a_conflict(client, ctx, emu, admin_headers):
    connect(ctx, emu)
    emu.settings(latency_ms=300)
    first = client.post("/api/v1/sync/runs", json={}, headers=admin_headers)
    second = client.post("/api/v1/sync/runs", json={}, headers=admin_headers)
    emu.settings(latency_ms=0)
    assert first.status_code == 202
    assert_error(second, 409, "run_in_progress")
    wait_done(client, admin_headers, first.json()["id"])


def test_setup_checks(client, ctx, emu, admin_headers):
    body = client.get("/api/v1/salesforce/check", headers=admin_headers).json()
    assert body["ok"] is False and all(c["fix"] for c in body["checks"] if not c["ok"])
    connect(ctx, emu)
    body = client.get("/api/v1/salesforce/check", headers=admin_headers).json()
    assert body["ok"] is True, body
    emu.control("PUT", "fields/Lead/HasOptedOutOfEmail", {"visible": True, "updateable": False})
    body = client.get("/api/v1/salesforce/check", headers=admin_headers).json()
    failed = [c for c in body["checks"] if not c["ok"]]
    assert body["ok"] is False and failed and "Field-Level Security" in failed[0]["fix"]


def test_no_transaction_is_open_during_salesforce_calls(
    client, ctx, emu, admin_headers, monkeypatch
):
    """Defect 7: the checks and a run started through the API call Salesforce with no
    database transaction open in the calling thread."""
    from tests.integration.salesforce.txguard import watch

    connect(ctx, emu)
    emu.seed(contacts=2, opted_out_fraction=1.0)
    with watch(monkeypatch) as w:
        assert client.get("/api/v1/salesforce/check", headers=admin_headers).json()["ok"]
        run = client.post("/api/v1/sync/runs", json={}, headers=admin_headers).json()
        assert wait_done(client, admin_headers, run["id"])["status"] == "succeeded"
    w.assert_none_held()
