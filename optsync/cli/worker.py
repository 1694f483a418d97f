"""``optsync worker`` and ``optsync push drain``."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta

import typer
from rich.table import Table

from optsync import logs
from optsync.cli.common import app_context, console, err_console, print_json
from optsync.domain.retry import RetryPolicy
from optsync.services.push import Pusher
from optsync.store.outbox import queue_stats
from optsync.web.metrics_server import MetricsServer
from optsync.worker.gateways import GatewayProvider
from optsync.worker.runner import Worker, worker_name

push_app = typer.Typer(help="The push outbox.", no_args_is_help=True)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def worker(
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Push only; no nightly sync."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    lease_seconds: float = typer.Option(
        120.0,
        "--lease-seconds",
        min=1.0,
        help="How long a claim lasts; a dead worker's pushes are taken over after it.",
    ),
    poll_seconds: float = typer.Option(
        1.0, "--poll-seconds", min=0.05, help="Longest sleep between outbox checks."
    ),
    daily_limit_pause_seconds: float = typer.Option(
        3600.0,
        "--daily-limit-pause-seconds",
        min=1.0,
        help="How long pushes wait after Salesforce's daily API limit is reached.",
    ),
    max_backoff_seconds: float = typer.Option(
        300.0,
        "--max-backoff-seconds",
        min=1.0,
        help="Longest wait between retries of a failing push (exponential backoff cap).",
    ),
    push_loops: int = typer.Option(
        2,
        "--push-loops",
        min=1,
        max=8,
        help="Push loops in this worker: while one loop's Salesforce call is in flight, "
        "another sends what arrived meanwhile.",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve this worker's /metrics (token required), /healthz and /readyz here.",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Address for --metrics-port to listen on."
    ),
) -> None:
    """Push worker + scheduler. Run any number of them against one PostgreSQL database."""
    with app_context() as ctx:
        logs.configure(ctx.settings.log_format, verbose=verbose)
        w = Worker(
            ctx,
            schedule=not no_schedule,
            poll_s=poll_seconds,
            push_loops=push_loops,
            lease=timedelta(seconds=lease_seconds),
            policy=RetryPolicy(
                cap_s=max_backoff_seconds, daily_limit_pause_s=daily_limit_pause_seconds
            ),
        )
        server = None
        if metrics_port is not None:
            server = MetricsServer(ctx, metrics_host, metrics_port)
        w.start()
        if server is not None:
            server.start()
        err_console.print(f"optsync worker {w.pusher.worker} running; Ctrl-C to stop.")
        try:
            wait_for_signal()
        finally:
            if server is not None:
                server.stop()
            w.stop()
    err_console.print("worker stopped.")


DRAIN_LABELS = {
    "sent": "sent",
    "retried": "retried",
    "failed": "failed",
    "not_linked": "not in Salesforce",
    "followed": "followed",
    "waiting": "waiting",
    "failed_total": "failed, all",
    "not_linked_total": "not in Salesforce, all",
    "api_calls": "API calls",
    "paused_until": "paused until",
}
"""The drain report's rows for people (``--json`` keeps the keys): ``not_linked`` is an
address no Salesforce record carries, *not in Salesforce* (issue 16)."""


@push_app.command("drain")
def drain(json_: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Send every pending push now and exit (reports sent / failed / waiting)."""
    with app_context() as ctx:
        gateways = GatewayProvider(ctx)
        if gateways() is None:
            err_console.print(
                "[yellow]No Salesforce connection: nothing can be pushed.[/] "
                "Run `optsync salesforce connect`."
            )
        pusher = Pusher(ctx.db, gateways, worker=worker_name(), clock=ctx.clock)
        report = pusher.drain()
        with ctx.db.transaction() as session:
            stats = queue_stats(session, ctx.clock())
        api_calls = gateways.api_calls
        gateways.close()
    data = {
        **report.as_dict(),
        "api_calls": api_calls,
        "waiting": int(stats["pending"] + stats["in_flight"]),
        "not_linked_total": int(stats["not_linked"]),
        "failed_total": int(stats["failed"]),
    }
    if json_:
        print_json(data)
        return
    table = Table(title="Push drain", show_header=False)
    for key, label in DRAIN_LABELS.items():
        value = data[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "0"
        table.add_row(label, str(value))
    console.print(table)
