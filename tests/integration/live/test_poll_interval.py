"""A changed poll interval takes effect at once: the next poll is due an interval (the one
in force now) after the last one, not when the old interval said. Emulator, SQLite and
PostgreSQL, a worker's live-pull thread in this process on a clock moved by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.live.conftest import link, tick_in_salesforce, turn_on, unsubscribed
from tests.integration.live.test_cdc import Running, wait_for
from tests.integration.live.test_watermark import ShiftedClock, shifted_ctx

__all__ = ["shifted_ctx"]  # a fixture used below

pytestmark = pytest.mark.emulator


def test_a_shorter_poll_interval_polls_on_the_new_interval(emu, shifted_ctx):
    db = shifted_ctx.db
    clock = shifted_ctx.clock
    assert isinstance(clock, ShiftedClock)
    [c0] = emu.seed(contacts=1)["contact_ids"]
    link(db, [c0])
    turn_on(db, live_pull="poll", poll_interval_s=3600)
    worker = Running(shifted_ctx, emu)
    try:
        pulls = worker.pull.objects
        wait_for(lambda: all(pulls[o].next_poll is not None for o in ("Contact", "Lead")))
        first = pulls["Contact"].next_poll
        assert first is not None and first > clock() + timedelta(minutes=50)

        turn_on(db, live_pull="poll", poll_interval_s=60)  # an admin wants it sooner
        tick_in_salesforce(emu, c0)
        clock.by = timedelta(seconds=61)  # a minute on: due by the new interval only

        wait_for(lambda: c0 in unsubscribed(db))
        assert pulls["Contact"].next_poll is not None
        assert pulls["Contact"].next_poll < first
    finally:
        worker.close()
