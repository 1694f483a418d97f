"""A real ``optsync worker`` killed with SIGKILL mid-stream resumes from the stored
replay id: nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import signal

from optsync.store import live_pull as state_store
from optsync.store.db import database_now
from tests.integration.live.conftest import (
    ledger_count,
    link,
    tick_in_salesforce,
    turn_on,
    unsubscribed,
)
from tests.integration.push.test_workers import start_worker, wait_for, worker_env


def _status(db) -> dict[str, str]:
    with db.transaction() as s:
        return {st.object: st.status for st in state_store.all_states(s)}


def test_sigkill_mid_stream_resumes_from_the_stored_replay_id(emu, db, database_url, tmp_path):
    ids = emu.seed(contacts=6)["contact_ids"]
    link(db, ids)
    turn_on(db, live_pull="cdc")
    env = {
        **worker_env(emu, database_url, tmp_path / "data"),
        "OPTSYNC_SF_PUBSUB_URL": emu.pubsub_url,
    }
    first = start_worker(env)
    try:
        wait_for(lambda: _status(db).get("Contact") == "live", timeout=30)
        for rid in ids[:3]:
            tick_in_salesforce(emu, rid)
        wait_for(lambda: unsubscribed(db) >= {ids[0]}, timeout=30)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    with db.transaction() as s:
        replay = state_store.get_state(s, "Contact", database_now(s)).replay_id
    assert replay is not None
    for rid in ids[3:]:  # committed while no subscriber runs
        tick_in_salesforce(emu, rid)
    second = start_worker(env)
    try:
        wait_for(lambda: unsubscribed(db) == set(ids), timeout=60)
    finally:
        second.terminate()
        second.wait(10)
    assert ledger_count(db) == 6  # each opt-out exactly once
