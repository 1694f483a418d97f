"""The app factory ``optsync serve --workers N`` hands to uvicorn.

Each worker process is started by uvicorn and builds its own app here, from the same
``OPTSYNC_*`` settings as the parent: its own database pool, its own group commit. The
pool is closed when the worker shuts down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from optsync.bootstrap import open_context
from optsync.web import access_log
from optsync.web.app import create_app, tune_for_serving


def create() -> FastAPI:
    """A worker's app (``uvicorn --factory optsync.web.asgi:create``)."""
    ctx = open_context()
    app = create_app(ctx)
    access_log.install()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app.router.lifespan_context = lifespan
    tune_for_serving()
    return app
