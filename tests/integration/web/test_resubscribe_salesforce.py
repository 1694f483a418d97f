"""The re-subscribe response reads the field from Salesforce (the emulator here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optsync.salesforce.connection import ConnectionConfig, save_connection


@pytest.fixture
def connected(ctx, emu):
    config = ConnectionConfig(
        auth="client_credentials",
        login_url=emu.login_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        username=emu.username,
        password=emu.password,
        private_key=Path(emu.private_key_file).read_text(),
        api_version="62.0",
        ca_bundle=emu.ca_bundle,
    )
    with ctx.db.transaction() as s:
        save_connection(s, config, ctx.settings.resolved_secret_key, now=ctx.clock())
    return emu


def _resubscribe(client, headers, sf_id: str) -> dict:
    pid = client.post(
        "/api/v1/persons", json={"email": "r@example.com", "salesforce_id": sf_id}, headers=headers
    ).json()["person"]["id"]
    client.post("/api/v1/unsubscribes", json={"person_id": pid}, headers=headers)
    r = client.delete(f"/api/v1/unsubscribes/{pid}?reason=asked", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.emulator
def test_field_still_set_in_salesforce_is_reported(client, admin_headers, connected):
    contact = connected.seed(contacts=1, opted_out_fraction=1.0)["contact_ids"][0]
    out = _resubscribe(client, admin_headers, contact)
    assert out["salesforce_field_still_set"] is True and out["salesforce_check"] is None


@pytest.mark.emulator
def test_field_cleared_in_salesforce_is_reported(client, admin_headers, connected):
    contact = connected.seed(contacts=1, opted_out_fraction=0.0)["contact_ids"][0]
    out = _resubscribe(client, admin_headers, contact)
    assert out["salesforce_field_still_set"] is False


@pytest.mark.emulator
def test_deleted_record_counts_as_not_set(client, admin_headers, connected):
    contact = connected.seed(contacts=1, opted_out_fraction=1.0)["contact_ids"][0]
    connected.control("DELETE", f"records/{contact}")
    out = _resubscribe(client, admin_headers, contact)
    assert (
        out["salesforce_field_still_set"] is False and "no longer exists" in out["salesforce_check"]
    )
