"""``optsync up``: the web app and the worker in one process."""

from __future__ import annotations

import typer
import uvicorn

from optsync import logs
from optsync.bootstrap import open_context
from optsync.cli.common import check_port_free
from optsync.web.asgi import UVICORN_OPTIONS, serving_app
from optsync.worker.runner import Worker


def up(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Web app + push worker + scheduler in one process (a small team on SQLite)."""
    check_port_free(host, port)
    ctx = open_context()
    logs.configure(ctx.settings.log_format, verbose=verbose)
    worker = Worker(ctx)
    try:
        app = serving_app(ctx)
        worker.start()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=logs.dict_config(ctx.settings.log_format, verbose=verbose),
            **UVICORN_OPTIONS,
        )
    finally:
        worker.stop()
        ctx.close()
