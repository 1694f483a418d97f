"""Every CDC fault ends with every opt-out applied: gap, overflow, stall, expired replay
id, exhausted allocation."""

from __future__ import annotations

import time
from datetime import timedelta

from optsync.clock import utcnow
from optsync.emulator.soql import format_datetime
from tests.integration.live.conftest import link, tick_in_salesforce, turn_on, unsubscribed
from tests.integration.live.test_cdc import live_ctx, running, status, wait_for  # noqa: F401


def set_silently(emu, record_id: str, minutes_ago: float = 2) -> None:
    """A change the stream never carried (dropped, overflowed): written straight into
    the org, stamped a little earlier (its transaction began before)."""
    stamp = format_datetime(utcnow() - timedelta(minutes=minutes_ago))
    store = emu.org.store
    with store.lock:
        store.conn.execute(
            'UPDATE "Contact" SET "HasOptedOutOfEmail" = 1, "SystemModstamp" = ? WHERE "Id" = ?',
            (stamp, record_id),
        )


def started(emu, live_ctx, running, n=3, **kwargs):  # noqa: F811
    ids = emu.seed(contacts=n)["contact_ids"]
    link(live_ctx.db, ids)
    turn_on(live_ctx.db)
    r = running(**kwargs)
    wait_for(lambda: status(live_ctx.db) == "live")
    return ids, r


def test_a_gap_event_rereads_the_records(emu, live_ctx, running):  # noqa: F811
    ids, _ = started(emu, live_ctx, running)
    set_silently(emu, ids[0])
    emu.control("POST", "pubsub/gap", {"change_type": "UPDATE", "record_ids": [ids[0]]})
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[0]})


def test_an_overflow_is_caught_up_by_polling(emu, live_ctx, running):  # noqa: F811
    ids, _ = started(emu, live_ctx, running)
    set_silently(emu, ids[0])
    set_silently(emu, ids[1])
    emu.control("POST", "pubsub/overflow", {"object": "Contact"})
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[0], ids[1]})
    wait_for(lambda: status(live_ctx.db) == "live")
    tick_in_salesforce(emu, ids[2])
    wait_for(lambda: ids[2] in unsubscribed(live_ctx.db))


def test_a_stalled_stream_is_rebuilt(emu, live_ctx, running):  # noqa: F811
    # keepalives well inside the watchdog, as Salesforce's 270 s are inside its 300 s
    emu.control("PUT", "pubsub/settings", {"keepalive_s": 0.2})
    ids, _ = started(emu, live_ctx, running, watchdog_s=1.5)
    tick_in_salesforce(emu, ids[1])
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[1]})
    emu.control("POST", "pubsub/streams/stall")
    tick_in_salesforce(emu, ids[0])
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[0], ids[1]})


def test_an_expired_replay_id_is_caught_up(emu, live_ctx, running):  # noqa: F811
    ids, first = started(emu, live_ctx, running)
    tick_in_salesforce(emu, ids[0])
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[0]})
    first.close()  # the subscriber is down ...
    emu.control("PUT", "pubsub/settings", {"retention_s": 0.5})
    tick_in_salesforce(emu, ids[1])
    set_silently(emu, ids[1])  # (its change happened a little while ago)
    time.sleep(1.0)  # ... longer than the retention
    running()
    wait_for(lambda: unsubscribed(live_ctx.db) == {ids[0], ids[1]})


def test_an_exhausted_allocation_is_caught_up(emu, live_ctx, running):  # noqa: F811
    emu.control("PUT", "pubsub/settings", {"daily_delivery_limit": 1})
    ids, _ = started(emu, live_ctx, running, n=4)
    for rid in ids[:3]:
        tick_in_salesforce(emu, rid)
        set_silently(emu, rid)
    wait_for(lambda: unsubscribed(live_ctx.db) == set(ids[:3]))
