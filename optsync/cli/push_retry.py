"""``optsync push retry``: re-send failed pushes once their fix is in place."""

from __future__ import annotations

import typer

from optsync.cli.common import app_context, console, print_json
from optsync.services.push_retry import retry_pushes


def retry(
    codes: list[str] = typer.Option(
        [], "--code", help="Retry the failed pushes with this Salesforce error code (repeatable)."
    ),
    emails: list[str] = typer.Option(
        [], "--email", help="Retry the failed push of this address (repeatable)."
    ),
    all_failed: bool = typer.Option(False, "--all-failed", help="Retry every failed push."),
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Send failed pushes again, once you fixed what their message names.

    A running worker (or `optsync push drain`) sends them. Filters combine: --code X
    --email E retries E's push only if it failed with X.
    """
    with app_context() as ctx, ctx.db.transaction() as session:
        result = retry_pushes(
            session, now=ctx.clock(), codes=codes, emails=emails, all_failed=all_failed
        )
    if json_:
        print_json({"reopened": result.reopened, "still_failed": result.still_failed})
        return
    console.print(
        f"{result.reopened} failed push{'es' if result.reopened != 1 else ''} queued again; "
        f"{result.still_failed} still failed."
    )
    if result.reopened:
        console.print("A running worker sends them now (or run `optsync push drain`).")
