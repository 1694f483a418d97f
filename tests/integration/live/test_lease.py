"""Exactly one live-pull subscriber: the lease on the database's clock."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from optsync.store import live_pull as state_store
from optsync.store.db import database_now
from tests.integration.live.conftest import turn_on
from tests.integration.push.test_workers import start_worker, wait_for, worker_env

TTL = timedelta(seconds=2)


def test_one_holder_at_a_time_and_a_take_over_after_expiry(db):
    with db.transaction() as s:
        assert state_store.acquire(s, "a", TTL) is not None
    with db.transaction() as s:
        assert state_store.acquire(s, "b", TTL) is None  # a's lease is live
    with db.transaction() as s:
        assert state_store.acquire(s, "a", TTL) is not None  # a renews
    time.sleep(2.2)
    with db.transaction() as s:
        assert state_store.acquire(s, "b", TTL) is not None  # a died: b takes over
    with db.transaction() as s:
        assert state_store.acquire(s, "a", TTL) is None
        assert state_store.holder(s)[0] == "b"


def test_a_released_lease_is_taken_at_once(db):
    with db.transaction() as s:
        state_store.acquire(s, "a", timedelta(minutes=5))
        state_store.release(s, "a")
    with db.transaction() as s:
        assert state_store.acquire(s, "b", TTL) is not None


def _holder_pid(db) -> int | None:
    with db.transaction() as s:
        holder, expires = state_store.holder(s)
        now = database_now(s)
    if holder is None or expires is None or expires < now:
        return None
    return int(holder.split(":")[1])


@pytest.mark.postgres
def test_two_workers_never_both_subscribe_and_the_second_takes_over(
    emu, pg_db, postgres_url, tmp_path
):
    turn_on(pg_db, live_pull="poll", poll_interval_s=15)
    env = worker_env(emu, postgres_url, tmp_path / "data")
    first = start_worker(env)
    second = start_worker(env)
    workers = {first.pid: first, second.pid: second}
    try:
        wait_for(lambda: _holder_pid(pg_db) in workers, timeout=30)
        holder = _holder_pid(pg_db)
        assert holder is not None
        seen = set()
        for _ in range(20):  # a few seconds of renewals: the holder never changes
            seen.add(_holder_pid(pg_db))
            time.sleep(0.25)
        assert seen == {holder}
        os.kill(holder, signal.SIGKILL)
        workers[holder].wait(10)
        other = next(pid for pid in workers if pid != holder)
        started = time.monotonic()
        wait_for(lambda: _holder_pid(pg_db) == other, timeout=30)
        assert time.monotonic() - started < 20  # within seconds (lease 15 s)
        with pg_db.transaction() as s:
            states = {st.object: st.status for st in state_store.all_states(s)}
        assert states == {"Contact": "polling", "Lead": "polling"}
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
