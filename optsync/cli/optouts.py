"""``optsync unsubscribe`` and ``optsync resubscribe``."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import typer

from optsync.cli.common import (
    app_context,
    console,
    count_data_lines,
    csv_rows,
    err_console,
    progress_bar,
)
from optsync.domain.optout import Source
from optsync.errors import UsageError
from optsync.services import optouts
from optsync.services.bulk_unsubscribes import unsubscribe_many


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def unsubscribe(
    emails: list[str] = typer.Argument(None, help="One or more email addresses."),
    file: Path = typer.Option(
        None, "--file", "-f", help="A CSV file with an 'email' column (e.g. a suppression list)."
    ),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the ledger)."),
) -> None:
    """Record unsubscribes; an unknown address is added so it stays suppressed."""
    if not emails and file is None:
        raise UsageError("EMAIL: give at least one address, or --file FILE.csv.", field="EMAIL")
    actor = _actor()
    new = existing = 0
    errors: list[str] = []
    with app_context() as ctx:
        if emails:
            # validate all first: a bad address changes nothing
            for email in emails:
                optouts.parse_email(email, "EMAIL")
            with ctx.db.transaction() as session:
                for email in emails:
                    result = optouts.unsubscribe_email(
                        session,
                        email,
                        source=Source.CLI,
                        actor=actor,
                        now=ctx.clock(),
                        reason=reason,
                    )
                    new += result.changed
                    existing += not result.changed
        if file is not None:
            rows = csv_rows(file)
            with progress_bar("Unsubscribing") as bar:
                task = bar.add_task("Unsubscribing", total=count_data_lines(file))
                for batch in _batches(rows, FILE_BATCH):
                    report = unsubscribe_many(
                        ctx.db,
                        [email for _line, email in batch],
                        source=Source.CSV,
                        actor=actor,
                        now=ctx.clock(),
                        reason=reason,
                        evidence={"file": file.name},
                    )
                    new += report.new
                    existing += report.existing
                    errors += [
                        f"line {batch[e.index][0]}: email: {e.message}" for e in report.errors
                    ]
                    bar.advance(task, len(batch))
    console.print(f"{new} unsubscribed, {existing} already unsubscribed.")
    for message in errors:
        err_console.print(f"[red]rejected[/] {message}", highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(1)


FILE_BATCH = 10_000  # addresses per call of the set-based bulk service


def _batches(
    rows: Iterator[tuple[int, dict[str, str]]], size: int
) -> Iterator[list[tuple[int, str]]]:
    """(line, email) pairs in lists of ``size``, so a huge file streams."""
    batch: list[tuple[int, str]] = []
    for line, row in rows:
        batch.append((line, row.get("email", "")))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def resubscribe(
    email: str = typer.Argument(..., help="The address to re-subscribe."),
    reason: str = typer.Option(..., "--reason", help="Why this person may be emailed again."),
) -> None:
    """Remove an unsubscribe (ledger entry kept). Clear the field in Salesforce too."""
    with app_context() as ctx, ctx.db.transaction() as session:
        result = optouts.resubscribe_email(
            session, email, source=Source.CLI, actor=_actor(), now=ctx.clock(), reason=reason
        )
    if result.changed:
        console.print(f"Re-subscribed {result.person.email}.")
        if result.person.salesforce_id:
            console.print(
                "[yellow]Also clear the opt-out field on Salesforce record "
                f"{result.person.salesforce_id}[/]: re-subscribes are never synced, and the "
                "next sync opts the person out again while Salesforce still has it set."
            )
    else:
        console.print(f"{result.person.email} was not unsubscribed; nothing changed.")
