"""Fixtures for the nightly sync: a gateway on the emulator and a store with persons."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from optsync.emulator import Emulator
from optsync.salesforce.connection import ConnectionConfig
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.sync_run import SyncOptions
from optsync.services.sync_settings import update_settings
from optsync.store.db import Database
from optsync.store.models import LedgerEntry, Person, SyncRun

FAST = SyncOptions(bulk_poll_initial=0.02, bulk_poll_max=0.2, heartbeat_every=3600)
BULK = SyncOptions(
    bulk_threshold=1, bulk_poll_initial=0.02, bulk_poll_max=0.2, heartbeat_every=3600
)


def config_for(emu: Emulator) -> ConnectionConfig:
    return ConnectionConfig(
        auth="client_credentials",
        login_url=emu.login_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        ca_bundle=emu.ca_bundle,
    ).validated()


@pytest.fixture
def gateway(emu: Emulator) -> Iterator[SalesforceGateway]:
    gw = SalesforceGateway(config_for(emu))
    try:
        yield gw
    finally:
        gw.close()


def add_persons(db: Database, clock: Any, specs: Sequence[dict[str, Any]]) -> list[int]:
    """Insert persons (``email``, ``salesforce_id``, ``unsubscribed``, ``resubscribed_at``)."""
    rows = []
    for i, spec in enumerate(specs):
        sf = spec.get("salesforce_id")
        rows.append(
            {
                "email": spec.get("email", f"p{i}-{sf or 'none'}@example.com".lower()),
                "salesforce_id": sf,
                "salesforce_object": (
                    None if sf is None else "Contact" if sf.startswith("003") else "Lead"
                ),
                "unsubscribed": spec.get("unsubscribed", False),
                "unsubscribed_at": clock() if spec.get("unsubscribed") else None,
                "unsubscribe_source": "api" if spec.get("unsubscribed") else None,
                "resubscribed_at": spec.get("resubscribed_at"),
                "created_at": clock(),
                "updated_at": clock(),
            }
        )
    with db.transaction() as s:
        return list(s.scalars(insert(Person).returning(Person.id), rows))


def set_field(
    db: Database,
    clock: Any,
    field: str = "email_opt_out",
    name: str = "Sales_Opt_Out__c",
    **changes: Any,
) -> None:
    with db.transaction() as s:
        update_settings(
            s, {"field": field, "sales_opt_out_field": name, **changes}, actor="test", now=clock()
        )


def person(db: Database, pid: int) -> Person:
    with db.transaction() as s:
        p = s.get(Person, pid)
        assert p is not None
        s.expunge(p)
        return p


def ledger_count(db: Database, pid: int | None = None) -> int:
    with db.transaction() as s:
        q = select(LedgerEntry.id)
        if pid is not None:
            q = q.where(LedgerEntry.person_id == pid)
        return len(list(s.scalars(q)))


def remote(emu: Emulator, record_id: str) -> dict[str, Any]:
    return dict(emu.control("GET", f"records/{record_id}"))


def age_run(db: Database, run_id: int, delta: timedelta) -> None:
    """Make a run look ``delta`` older to the reaper (which reads the database's clock,
    so moving a test's FakeClock does not age a heartbeat)."""
    with db.transaction() as s:
        row = s.get(SyncRun, run_id)
        assert row is not None and row.heartbeat_at is not None
        row.heartbeat_at = row.heartbeat_at - delta
        row.started_at = row.started_at - delta
