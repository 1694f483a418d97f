"""``create_app(ctx)``: the FastAPI application, built from a context and nothing else.

No module-level state: tests build one app per database, and ``optsync serve``,
``optsync up`` and the demo build theirs from ``open_context()``. The admin pages
(``/login``, ``/settings/…``) join as another router rendering ``templates/base.html``.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from optsync import __version__
from optsync.bootstrap import Context
from optsync.services.links import UnsubscribeLinks
from optsync.services.sync_launcher import SyncLauncher
from optsync.store.db import UNAVAILABLE
from optsync.web import health, public
from optsync.web.admin import install_admin
from optsync.web.api import api_router
from optsync.web.batching import GroupCommit
from optsync.web.errors import error_responses, install_error_handlers
from optsync.web.guards import MAX_BODY_BYTES, RequestGuards
from optsync.web.unavailable import database_unavailable

STATIC = Path(__file__).parent / "static"
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits (Python's default: 0.005)."""

DESCRIPTION = """Keeps email opt-outs consistent between a sales workspace and Salesforce.

Every `/api/v1` route, and `/metrics`, needs `Authorization: Bearer <token>` (create one
with `optsync token create NAME [--admin]`). Errors are always
`{"error": {"code", "message", "field"}}` with a 4xx status. Request bodies are limited
to 5 MiB (413)."""


def create_app(ctx: Context, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(
        title="optsync",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        # The interactive docs load scripts from a CDN; /openapi.json is the contract.
        docs_url=None,
        redoc_url=None,
        # any route may meet a database that cannot be reached (optsync.web.unavailable)
        responses=error_responses(503),
    )
    app.state.ctx = ctx
    app.state.links = UnsubscribeLinks.from_settings(ctx.settings)
    app.state.schema_head = ctx.db.head_revision()
    app.state.sync_launcher = SyncLauncher(ctx)
    app.state.group_commit = GroupCommit(ctx.db, ctx.clock)
    install_error_handlers(app)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, database_unavailable)
    app.include_router(public.router)
    app.include_router(health.router)
    app.include_router(api_router())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestGuards, max_body_bytes=max_body_bytes)
    install_admin(app, ctx)
    return app


def tune_for_serving() -> None:
    """Two interpreter settings for a serving process, applied once the app is built.

    * **Freeze the startup heap.** Modules, the app and its routes, compiled templates
      and SQLAlchemy's mappers live as long as the process, yet every full garbage
      collection walks all of them: a pause of 100 ms or more that stalls every request
      in flight. Frozen, a full pass walks only what requests allocate.
    * **A shorter GIL switch interval.** The event loop parses requests while the group
      commit's thread waits on the database; each time an answer arrives that thread
      needs the GIL back, and by default waits up to 5 ms for the loop to yield it, once
      per statement. At 0.5 ms a commit's round trips no longer queue behind the loop
      (on PostgreSQL this halves the one-click p99: ``docs/benchmarks.md``).
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)
