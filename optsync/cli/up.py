"""``optsync up``: the web app and the worker in one process."""

from __future__ import annotations

import typer
import uvicorn

from optsync.bootstrap import open_context
from optsync.cli.worker import configure_logging
from optsync.web import access_log
from optsync.web.app import create_app, tune_for_serving
from optsync.worker.runner import Worker


def up(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Web app + push worker + scheduler in one process (a small team on SQLite)."""
    configure_logging(verbose)
    ctx = open_context()
    worker = Worker(ctx)
    try:
        app = create_app(ctx)
        access_log.install()
        worker.start()
        tune_for_serving()
        uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False)
    finally:
        worker.stop()
        ctx.close()
