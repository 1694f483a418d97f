"""The small server a worker process runs to expose its own metrics
(``optsync worker --metrics-port``): the worker's counters, the outbox gauges, health.

A worker's counters live in the worker; the web app's ``/metrics`` cannot see them (unless
it is the same process, as with ``optsync up``), so each worker is scraped on its own port.
"""

from __future__ import annotations

import threading

import uvicorn
from fastapi import FastAPI

from optsync import logs
from optsync.bootstrap import Context
from optsync.store.db import UNAVAILABLE
from optsync.web import health
from optsync.web.errors import install_error_handlers
from optsync.web.unavailable import database_unavailable


def metrics_app(ctx: Context) -> FastAPI:
    """``/metrics`` (token required, as on the web app), ``/healthz`` and ``/readyz`` for a
    process that serves nothing else."""
    app = FastAPI(title="optsync worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.state.schema_head = ctx.db.head_revision()
    install_error_handlers(app)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, database_unavailable)
    app.include_router(health.router)
    return app


class MetricsServer:
    """:func:`metrics_app` on ``host:port`` in a background thread of the worker."""

    def __init__(self, ctx: Context, host: str, port: int) -> None:
        config = uvicorn.Config(
            metrics_app(ctx),
            host=host,
            port=port,
            log_config=logs.dict_config(ctx.settings.log_format),
            access_log=False,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="optsync-metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
