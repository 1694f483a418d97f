"""How a worker learns that a push was queued, without polling hard.

* In the same process (``optsync up``, the demo): ``store.outbox.LOCAL_WAKEUP`` is set
  when a transaction that queued a push commits.
* On PostgreSQL, from any machine: a listener thread ``LISTEN``s on the outbox channel
  and sets the same event on every ``NOTIFY``.
* Always: the worker wakes at least every ``poll_s`` seconds (missed notifications,
  retries coming due).
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from optsync.store.outbox import LOCAL_WAKEUP, NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class PostgresListener(threading.Thread):
    """Sets ``LOCAL_WAKEUP`` on every ``NOTIFY optsync_outbox``; reconnects with backoff."""

    def __init__(self, database_url: str, stop: threading.Event) -> None:
        super().__init__(name="optsync-listen", daemon=True)
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.stop_event = stop
        self.ready = threading.Event()

    def run(self) -> None:
        delay = 0.5
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.ready.set()
                    delay = 0.5
                    while not self.stop_event.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            LOCAL_WAKEUP.set()
            except psycopg.Error as exc:
                log.warning(
                    "outbox listener lost its connection; reconnecting",
                    extra={"error": type(exc).__name__},
                )
                self.stop_event.wait(delay)
                delay = min(delay * 2, 30.0)
