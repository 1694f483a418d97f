"""``optsync persons``: import and inspect the people the sales team emails."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from optsync.cli.common import app_context, console, count_data_lines, err_console, progress_bar
from optsync.services.persons import import_persons, read_csv

app = typer.Typer(help="Persons: import from CSV.", no_args_is_help=True)

MAX_LISTED_ERRORS = 1000


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., help="CSV with columns email (required), salesforce_id, first_name, last_name."
    ),
) -> None:
    """Import persons; bad rows are listed with their line number and skipped.

    Exits 1 when any row was rejected. Importing the same file again changes nothing.
    """
    started = time.perf_counter()
    with app_context() as ctx:
        total = count_data_lines(file)
        rows = read_csv(file)
        with progress_bar("Importing") as bar:
            task = bar.add_task(f"Importing {file.name}", total=total)
            report = import_persons(
                ctx.db, rows, now=ctx.clock(), progress=lambda n: bar.advance(task, n)
            )
    elapsed = time.perf_counter() - started
    table = Table(title=f"Imported {file.name}", show_header=False)
    for label, value in (
        ("rows read", report.rows),
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("linked to Salesforce", report.linked),
        ("rejected", len(report.rejected)),
        ("rows per second", f"{report.rows / elapsed:,.0f}" if elapsed else "-"),
    ):
        table.add_row(label, str(value))
    console.print(table)
    for err in report.rejected[:MAX_LISTED_ERRORS]:
        err_console.print(f"[red]line {err.line}[/]: {err.reason}")
    if len(report.rejected) > MAX_LISTED_ERRORS:
        err_console.print(f"... and {len(report.rejected) - MAX_LISTED_ERRORS} more rejected rows")
    if report.rejected:
        raise typer.Exit(1)
