"""Start and stop the worker's threads: the push loop, the outbox listener, the scheduler
and the live pull (which subscribes only while this worker holds the installation's
live-pull lease)."""

from __future__ import annotations

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
    schedule: bool = True
    live_pull: bool = True
    lease: timedelta = DEFAULT_LEASE
    policy: RetryPolicy | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gateways = GatewayProvider(self.ctx)
        self.pusher = Pusher(
            self.ctx.db,
            self.gateways,
            worker=worker_name(),
            clock=self.ctx.clock,
            lease=self.lease,
            policy=self.policy,
        )

    def start(self) -> None:
        self._spawn(
            "optsync-push", lambda: run_push_loop(self.pusher, self.stop_event, poll_s=self.poll_s)
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
