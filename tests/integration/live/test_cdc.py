"""The live pull over the emulator's Pub/Sub API: a worker's live-pull thread in this
process, a Salesforce user ticking records, faults injected by the control API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optsync.bootstrap import Context
from optsync.clock import utcnow
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_by_id
from optsync.settings import load_settings
from optsync.store import live_pull as state_store
from optsync.store.db import Database
from optsync.worker.live_pull import LivePull
from tests.fixtures_emulator import settings_env
from tests.integration.live.conftest import (
    ledger_count,
    link,
    tick_in_salesforce,
    turn_on,
    unsubscribed,
)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Running:
    def __init__(self, ctx: Context, emu, **kwargs) -> None:
        self.stop = threading.Event()
        self.pull = LivePull(
            ctx, self.stop, holder="test:1:1", pubsub_url=emu.pubsub_url, tick_s=0.1, **kwargs
        )
        self.thread = threading.Thread(target=self.pull.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)


@pytest.fixture
def live_ctx(database_url: str, tmp_path: Path, emu, monkeypatch) -> Iterator[Context]:
    for name, value in settings_env(emu).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url, secret_key="t")
    ctx = Context(settings=settings, db=Database(database_url), clock=utcnow)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def running(live_ctx, emu):
    started: list[Running] = []

    def start(**kwargs) -> Running:
        r = Running(live_ctx, emu, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def status(db, obj="Contact") -> str | None:
    with db.transaction() as s:
        states = {st.object: st for st in state_store.all_states(s)}
    return states[obj].status if obj in states else None


def test_events_apply_own_writes_skip_clearing_changes_nothing(emu, live_ctx, running):
    db = live_ctx.db
    ids = emu.seed(contacts=4)["contact_ids"]
    persons = link(db, ids)
    turn_on(db)
    running()
    wait_for(lambda: status(db) == "live")
    tick_in_salesforce(emu, ids[0])
    wait_for(lambda: unsubscribed(db) == {ids[0]})
    # the ledger says where it came from
    from sqlalchemy import select

    from optsync.store.models import LedgerEntry

    with db.transaction() as s:
        entry = s.scalars(select(LedgerEntry)).one()
    assert entry.source == "salesforce"
    assert entry.evidence["record_id"] == ids[0]
    assert entry.evidence["replay_id"] and entry.evidence["commit_time"]
    assert entry.evidence["commit_user"]
    # optsync's own write (a push) comes back as an event and is skipped
    from optsync.salesforce.gateway import Target, build_gateway, connection_in_force

    with build_gateway(connection_in_force(live_ctx), "push") as gw:
        gw.set_opt_out([Target(ids[1], "Contact")], "HasOptedOutOfEmail")
    # clearing the field changes nothing; a later tick of another record still applies
    with db.transaction() as s:
        unsubscribe_by_id(s, persons[ids[2]], source=Source.API, actor="t", now=utcnow())
    tick_in_salesforce(emu, ids[2], value=False)
    tick_in_salesforce(emu, ids[3])
    wait_for(lambda: ids[3] in unsubscribed(db))
    assert unsubscribed(db) == {ids[0], ids[2], ids[3]}  # ids[1]: own write skipped
    assert ledger_count(db) == 3


def test_a_switch_of_the_synced_field_reaches_an_open_stream(emu, live_ctx, running):
    """The stream applies the field in force now, not the one it was opened with."""
    db = live_ctx.db
    ids = emu.seed(contacts=2)["contact_ids"]
    link(db, ids)
    turn_on(db, field="sales_opt_out")
    running()
    wait_for(lambda: status(db) == "live")
    from optsync.services.sync_settings import update_settings

    with db.transaction() as s:
        update_settings(s, {"field": "email_opt_out"}, actor="test", now=utcnow())
    time.sleep(1.0)  # a few ticks of the loop: it has read the new settings
    tick_in_salesforce(emu, ids[0])  # Email Opt Out, now the synced field
    wait_for(lambda: unsubscribed(db) == {ids[0]}, timeout=10)
