"""Hands the worker a Salesforce gateway for the connection in force.

The connection can be created, changed or removed while a worker runs (``optsync
salesforce connect`` from another shell, the web app). The provider re-reads it at most
every ``refresh_s`` seconds and keeps one gateway (and its session token) per
connection, so unsubscribes recorded before a connection existed are pushed as soon as it
does, without a restart. Gateways are built with the ``push`` profile (no retries in
the gateway: the outbox schedules each record's retry). The connection is read in a
short transaction of its own, never held across a call.
"""

from __future__ import annotations

import logging
import threading
import time

from optsync.bootstrap import Context
from optsync.errors import UsageError
from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.gateway import (
    Profile,
    SalesforceGateway,
    build_gateway,
    connection_in_force,
)

log = logging.getLogger(__name__)


class GatewayProvider:
    def __init__(self, ctx: Context, *, refresh_s: float = 15.0) -> None:
        self.ctx = ctx
        self.refresh_s = refresh_s
        self._config: ConnectionConfig | None = None
        self._gateway: SalesforceGateway | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._last_problem: str | None = None

    def __call__(self) -> SalesforceGateway | None:
        with self._lock:
            if time.monotonic() - self._checked_at >= self.refresh_s:
                self._checked_at = time.monotonic()
                try:
                    config = connection_in_force(self.ctx)
                except UsageError as exc:  # incomplete or invalid: wait for a fix
                    if str(exc) != self._last_problem:
                        log.warning("Salesforce connection unusable; pushes wait: %s", exc)
                        self._last_problem = str(exc)
                    config = None
                if config != self._config:
                    if self._gateway is not None:
                        self._gateway.close()
                    self._config = config
                    self._gateway = build_gateway(config, Profile.PUSH) if config else None
            return self._gateway

    @property
    def api_calls(self) -> int:
        return self._gateway.api_calls if self._gateway else 0

    def close(self) -> None:
        with self._lock:
            if self._gateway is not None:
                self._gateway.close()
                self._gateway = None
