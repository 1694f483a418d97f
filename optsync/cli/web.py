"""``optsync serve``: the web app alone (public unsubscribe pages, JSON API, metrics)."""

from __future__ import annotations

import typer
import uvicorn

from optsync import logs, metrics
from optsync.bootstrap import open_context
from optsync.cli.common import check_port_free
from optsync.web.asgi import UVICORN_OPTIONS, serving_app


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Web processes sharing the port (one per core; use PostgreSQL for more than one).",
    ),
) -> None:
    """Run the web app with uvicorn (behind a proxy, terminate TLS there)."""
    check_port_free(host, port)
    ctx = open_context()  # refuse bad settings or an old schema before anything starts
    logs.configure(ctx.settings.log_format)
    # uvicorn applies the same configuration in every process it starts
    log_config = logs.dict_config(ctx.settings.log_format)
    if workers > 1:
        ctx.close()  # each worker process opens its own (optsync.web.asgi)
        # the workers count into one directory; every scrape sums them (optsync.metrics)
        with metrics.multiprocess_dir(ctx.settings.ensure_data_dir()):
            uvicorn.run(
                "optsync.web.asgi:create",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_config=log_config,
                **UVICORN_OPTIONS,
            )
        return
    try:
        uvicorn.run(
            serving_app(ctx), host=host, port=port, log_config=log_config, **UVICORN_OPTIONS
        )
    finally:
        ctx.close()
