"""``create_app(ctx)``: the FastAPI application, built from a context and nothing else.

No module-level state: tests build one app per database, and ``optsync serve``,
``optsync up`` and the demo build theirs from ``open_context()``. The admin pages
(``/login``, ``/settings/…``) join as another router rendering ``templates/base.html``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
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
    app.state.links = UnsubscribeLinks.for_installation(ctx.settings, ctx.db)
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
    app.add_api_route("/", _root, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/favicon.ico", _favicon, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_middleware(RequestGuards, max_body_bytes=max_body_bytes)
    install_admin(app, ctx)
    return app


def _root() -> RedirectResponse:
    """The address ``optsync up`` prints leads to the admin pages (sign-in first)."""
    return RedirectResponse("/settings", status_code=307)


def _favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links: the same icon, no 404."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
