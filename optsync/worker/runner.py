"""Start and stop the worker's threads: the push loop, the outbox listener, the scheduler
and the live pull (which subscribes only while this worker holds the installation's
live-pull lease)."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from optsync.bootstrap import Context
from optsync.domain.retry import RetryPolicy
from optsync.services.push import DEFAULT_LEASE, Pusher
from optsync.worker.gateways import GatewayProvider
from optsync.worker.live_pull import LivePull
from optsync.worker.push_loop import run_push_loop
from optsync.worker.scheduler import run_scheduler_loop
from optsync.worker.wakeup import PostgresListener

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


@dataclass
class Worker:
    """The background half of optsync; ``start()`` returns at once, ``stop()`` joins."""

    ctx: Context
    poll_s: float = 1.0
    # push loops in this worker: a second loop claims what arrives while the first one's
    # call is in flight, so a steady trickle never waits for the previous call to return
    push_loops: int = 2
    schedule: bool = True
    live_pull: bool = True
    lease: timedelta = DEFAULT_LEASE
    policy: RetryPolicy | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gateways = GatewayProvider(self.ctx)
        name = worker_name()
        self.pushers = [
            Pusher(
                self.ctx.db,
                self.gateways,
                # each loop settles only its own claims, so each has a name of its own
                worker=name if n == 0 else f"{name}/{n}",
                clock=self.ctx.clock,
                lease=self.lease,
                policy=self.policy,
            )
            for n in range(max(1, self.push_loops))
        ]
        self.pusher = self.pushers[0]

    def start(self) -> None:
        for n, pusher in enumerate(self.pushers):
            self._spawn(
                f"optsync-push-{n}",
                functools.partial(run_push_loop, pusher, self.stop_event, poll_s=self.poll_s),
            )
        if self.ctx.db.dialect == "postgresql":
            listener = PostgresListener(self.ctx.db.url, self.stop_event)
            listener.start()
            self.threads.append(listener)
        if self.schedule:
            self._spawn("optsync-schedule", lambda: run_scheduler_loop(self.ctx, self.stop_event))
        if self.live_pull:
            puller = LivePull(self.ctx, self.stop_event, holder=self.pusher.worker)
            self._spawn("optsync-live-pull", puller.run)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        from optsync.store.outbox import LOCAL_WAKEUP

        LOCAL_WAKEUP.set()
        for thread in self.threads:
            thread.join(timeout)
        self.gateways.close()
