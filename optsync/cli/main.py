"""The ``optsync`` entry point: registers the command groups and turns errors into one
red line and an exit status."""

from __future__ import annotations

import os
import sys

import typer

from optsync.cli import (
    accounts,
    db,
    demo,
    emulator,
    links,
    notify,
    optouts,
    persons,
    push_retry,
    salesforce,
    secret,
    settings_cmd,
    sync,
    up,
    web,
    worker,
)
from optsync.cli.common import err_console
from optsync.errors import OptsyncError
from optsync.logs import LogFormatChoice

app = typer.Typer(
    name="optsync",
    help="Keep email opt-outs consistent between your sales workspace and Salesforce.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global_options(
    log_format: LogFormatChoice | None = typer.Option(
        None,
        "--log-format",
        help="Log lines as logfmt (default) or JSON; sets OPTSYNC_LOG_FORMAT.",
    ),
) -> None:
    """Options before the command apply to every process it starts (web workers too)."""
    if log_format is not None:
        os.environ["OPTSYNC_LOG_FORMAT"] = log_format.value


app.add_typer(db.app, name="db")
app.add_typer(accounts.user_app, name="user")
app.add_typer(accounts.token_app, name="token")
app.add_typer(accounts.audit_app, name="audit")
app.add_typer(secret.app, name="secret")
app.add_typer(persons.app, name="persons")
app.add_typer(settings_cmd.app, name="settings")
app.add_typer(notify.app, name="notify")
app.add_typer(salesforce.app, name="salesforce")
app.add_typer(worker.push_app, name="push")
worker.push_app.command("retry")(push_retry.retry)
app.command("worker")(worker.worker)
app.command("unsubscribe")(optouts.unsubscribe)
app.command("resubscribe")(optouts.resubscribe)


app.command("emulator")(emulator.emulator)
app.command("serve")(web.serve)
app.command("up")(up.up)
app.command("demo")(demo.demo)
app.command("link")(links.link)
app.add_typer(sync.app, name="sync")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every known failure is one line on stderr and a non-zero exit.

    Typer runs in standalone mode (it prints usage errors and exits); optsync's own errors
    propagate to here and become one red line.
    """
    try:
        app(args=argv, prog_name="optsync")
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except OptsyncError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("Aborted.")
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
