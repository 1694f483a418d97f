"""The live pull keeps the mirror's watermark moving (docs/sync.md "Records per
address: the mirror"): after a full read, while every object's changes reach the mirror
(a connected stream, or polls), a push relies on the mirror and makes no lookup; while
one object's stream is down and nothing covers it, the watermark stays where it was.
Emulator, SQLite and PostgreSQL, a worker's live-pull thread in this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from optsync.bootstrap import Context
from optsync.clock import utcnow
from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.push import Pusher
from optsync.services.sync_run import run_sync
from optsync.settings import load_settings
from optsync.store import live_pull as state_store
from optsync.store.db import Database
from optsync.store.models import SalesforceRecord
from optsync.store.records import mirror_state, mirror_trusted
from tests.fixtures_emulator import settings_env
from tests.integration.live.conftest import turn_on
from tests.integration.live.test_cdc import Running, live_ctx, running, status, wait_for
from tests.integration.live.test_poll import set_modstamp
from tests.integration.sync.conftest import FAST

__all__ = ["live_ctx", "running"]  # fixtures used below

pytestmark = pytest.mark.emulator


def _backdate(emu, seed: dict, minutes: float = 20) -> None:
    """The seeded records were last changed ``minutes`` ago: a full read of them leaves
    the watermark that old, as if the read had run that long ago."""
    at = utcnow() - timedelta(minutes=minutes)
    for obj, key in (("Contact", "contact_ids"), ("Lead", "lead_ids")):
        for rid in seed.get(key, []):
            set_modstamp(emu, obj, rid, at)


def _email(emu, record_id: str) -> str:
    return str(emu.control("GET", f"records/{record_id}")["Email"]).lower()


def _trusted(db: Database) -> bool:
    with db.transaction() as s:
        return mirror_trusted(s, utcnow())


def _through(db: Database) -> datetime | None:
    with db.transaction() as s:
        state = mirror_state(s)
        return None if state is None else state.through


def _full_read(db: Database, gateway) -> None:
    report = run_sync(db, gateway, clock=utcnow, options=FAST)
    assert report["status"] == "succeeded", report
    assert report["mirror"]["read"] == "full"
    with db.transaction() as s:
        state = mirror_state(s)
        assert state is not None and state.trusted


def _push_makes_no_lookup(db: Database, gateway, address: str, records: set[str]) -> None:
    with db.transaction() as s:
        optouts.unsubscribe_email(s, address, source=Source.API, actor="t", now=utcnow())
    before = dict(gateway.calls_by_endpoint)
    pusher = Pusher(db, lambda: gateway, worker="w", clock=utcnow)
    report = pusher.drain()
    calls = {k: v - before.get(k, 0) for k, v in gateway.calls_by_endpoint.items()}
    assert report.sent == 1 and report.records_sent == len(records), report
    assert report.lookups == 0 and "composite" not in calls, calls


def _new_lead(emu, email: str) -> str:
    """A Salesforce user creates a Lead (a change stamped now)."""
    return emu.org.store.create(
        "Lead", {"LastName": "Late", "Company": "Acme", "Email": email}, enforce_fls=False
    )


def _resumed(db: Database, running, objects: tuple[str, ...]) -> Running:
    """A worker whose streams resume after stored replay ids (``CUSTOM``): they carry
    each object's chain at once (a stream opened at ``LATEST`` waits for a poll to cover
    its start). A first worker stores them from keepalives, then stops."""
    first = running()

    def stored() -> bool:
        with db.transaction() as s:
            states = {st.object: st for st in state_store.all_states(s)}
        return all(o in states and states[o].replay_id for o in objects)

    wait_for(stored)
    first.close()
    return running()


def test_the_stream_keeps_a_full_read_trusted_and_a_push_makes_no_lookup(
    emu, live_ctx, running, sf_gateway
):
    db = live_ctx.db
    emu.control("PUT", "pubsub/settings", {"keepalive_s": 0.2})
    seed = emu.seed(contacts=2, leads=1)
    [c0, _c1], [le] = seed["contact_ids"], seed["lead_ids"]
    address = _email(emu, c0)
    emu.control("PATCH", f"records/{le}", {"Email": address})  # a duplicate of c0's address
    _backdate(emu, seed)
    turn_on(db, live_pull="cdc", poll_interval_s=3600)
    pulls = _resumed(db, running, ("Contact", "Lead")).pull.objects
    wait_for(lambda: pulls["Contact"].cover().live and pulls["Lead"].cover().live)
    _full_read(db, sf_gateway)
    assert not _trusted(db)  # the read's watermark is 20 minutes old

    _new_lead(emu, "someone.else@example.com")  # any change the stream carries

    wait_for(lambda: _trusted(db))
    _push_makes_no_lookup(db, sf_gateway, address, {c0, le})


class ShiftedClock:
    """The worker's clock, moved ahead by hand (the emulator keeps real time)."""

    def __init__(self) -> None:
        self.by = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.by


@pytest.fixture
def shifted_ctx(database_url: str, tmp_path: Path, emu, monkeypatch) -> Iterator[Context]:
    for name, value in settings_env(emu).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(data_dir=tmp_path / "data", database_url=database_url, secret_key="t")
    ctx = Context(settings=settings, db=Database(database_url), clock=ShiftedClock())
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.mark.parametrize("person_accounts", [False, True], ids=["contacts-leads", "with-pa"])
def test_polls_of_every_object_keep_a_full_read_trusted(
    emu, shifted_ctx, sf_gateway, person_accounts
):
    """With Person Accounts the nightly's full read reads the Accounts too, so once it
    has, the Account poll covers them like Contact and Lead and the watermark moves (the
    objects the mirror's last read covered, not Contact and Lead only)."""
    from tests.integration.live.test_person_accounts import _enable, _person_account

    db = shifted_ctx.db
    clock = shifted_ctx.clock
    assert isinstance(clock, ShiftedClock)
    if person_accounts:
        _enable(emu)
    seed = emu.seed(contacts=2, leads=1)
    [c0, _c1], [le] = seed["contact_ids"], seed["lead_ids"]
    address = _email(emu, c0)
    emu.control("PATCH", f"records/{le}", {"Email": address})
    records, objects = {c0, le}, ("Contact", "Lead")
    if person_accounts:
        account, _person_contact = _person_account(emu, address)
        set_modstamp(emu, "Account", account, utcnow() - timedelta(minutes=20))
        records, objects = records | {account}, (*objects, "Account")
    _backdate(emu, seed)
    turn_on(db, live_pull="poll", poll_interval_s=60)
    worker = Running(shifted_ctx, emu)
    try:

        def polled() -> bool:  # the Account pull joins once the org is known to have them
            pulls = worker.pull.objects
            return all(o in pulls and pulls[o].next_poll is not None for o in objects)

        wait_for(polled)
        _full_read(db, sf_gateway)
        assert not _trusted(db)

        clock.by = timedelta(seconds=61)  # the next polls are due

        wait_for(lambda: _trusted(db))
    finally:
        worker.close()
    _push_makes_no_lookup(db, sf_gateway, address, records)


def test_a_stream_down_for_one_object_holds_the_watermark(emu, live_ctx, running, sf_gateway):
    db = live_ctx.db
    emu.control("PUT", "pubsub/settings", {"keepalive_s": 0.2})
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact"]})  # CDC off for Lead
    [warm] = emu.seed(contacts=1)["contact_ids"]
    emu.control("PATCH", f"records/{warm}", {"FirstName": "Warm"})  # the bus has an event
    turn_on(db, live_pull="cdc", poll_interval_s=3600)
    pulls = _resumed(db, running, ("Contact",)).pull.objects
    wait_for(lambda: pulls["Contact"].cover().live and pulls["Lead"].next_poll is not None)
    assert status(db, "Lead") == "reconnecting"
    time.sleep(0.01)  # the Lead's one poll ran before the records below were written
    seed = emu.seed(contacts=2, leads=1)
    c0 = seed["contact_ids"][0]
    _full_read(db, sf_gateway)
    through = _through(db)
    assert through is not None

    emu.control("PATCH", f"records/{c0}", {"HasOptedOutOfEmail": True})  # a Contact event

    def mirrored() -> bool:
        with db.transaction() as s:
            row = s.get(SalesforceRecord, c0)
            return row is not None and row.email_opt_out is True

    wait_for(mirrored)
    time.sleep(0.5)
    # the Contact stream is live, but nothing read Lead since before the full read
    assert _through(db) == through


def test_only_a_trusted_mirror_moves_and_a_late_chain_untrusts_it(db):
    """``advance_through`` never makes a mirror trusted; a live pull that begins
    following an object after the last full read (its chain would start after the
    watermark) marks a trusted mirror untrusted, and leaves a recent one alone."""
    from optsync.store import live_pull as state_store
    from optsync.store.records import advance_through, save_mirror_state

    now = utcnow()
    with db.transaction() as s:
        save_mirror_state(s, now, through=now - timedelta(hours=1), trusted=False, reason="gap")
        assert not advance_through(s, now)
    assert _through(db) == now - timedelta(hours=1) and not _trusted(db)
    with db.transaction() as s:
        save_mirror_state(s, now, trusted=True)
        assert advance_through(s, now)
        assert not advance_through(s, now - timedelta(minutes=1))  # never back
    assert _through(db) == now and _trusted(db)

    with db.transaction() as s:  # a watermark within the first poll's overlap: kept
        state_store.get_state(s, "Contact", now + timedelta(minutes=4))
    assert _trusted(db)
    with db.transaction() as s:  # older than that: changes nobody read
        state_store.get_state(s, "Lead", now + timedelta(minutes=6))
        state = mirror_state(s)
        assert state is not None and not state.trusted
        assert state.reason == "the live pull began following Lead after the last full read"
