"""``optsync serve``: the web app alone (public unsubscribe pages, JSON API, metrics)."""

from __future__ import annotations

import typer
import uvicorn

from optsync.bootstrap import open_context
from optsync.web import access_log
from optsync.web.app import create_app


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Run the web app with uvicorn (behind a proxy, terminate TLS there)."""
    ctx = open_context()
    try:
        app = create_app(ctx)
        access_log.install()
        uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False)
    finally:
        ctx.close()
