"""``optsync persons``: import and inspect the people the sales team emails."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from optsync.cli.common import (
    app_context,
    console,
    count_data_lines,
    csv_rows,
    err_console,
    progress_bar,
)
from optsync.services.persons import import_persons

app = typer.Typer(help="Persons: import from CSV, pull from Salesforce.", no_args_is_help=True)

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
        rows = csv_rows(file)
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
        err_console.print(f"[red]line {err.line}[/]: {err.reason}", highlight=False, soft_wrap=True)
    if len(report.rejected) > MAX_LISTED_ERRORS:
        err_console.print(f"... and {len(report.rejected) - MAX_LISTED_ERRORS} more rejected rows")
    if report.rejected:
        raise typer.Exit(1)


@app.command("pull")
def pull(
    object_: str = typer.Option(
        "Contact,Lead", "--object", help="Which objects to pull, comma-separated."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Create or link persons from Salesforce Contacts and Leads that have an email.

    Each object is read with a REST query, or with a Bulk API 2.0 query job when it has
    2,000 records or more (the `via` column says which). Re-running it changes nothing.
    """
    from optsync.cli.common import print_json
    from optsync.errors import UsageError
    from optsync.salesforce.gateway import Profile, open_gateway
    from optsync.services.persons_pull import OBJECTS, pull_persons

    objects = [o.strip() for o in object_.split(",") if o.strip()]
    bad = [o for o in objects if o not in OBJECTS]
    if bad or not objects:
        raise UsageError(
            f"--object: {', '.join(bad) or 'nothing'} is not Contact or Lead.",
            field="--object",
            fix="Use --object Contact,Lead.",
        )
    with app_context() as ctx, open_gateway(ctx, Profile.JOB) as gateway:
        with progress_bar("Pulling") as bar:
            tasks = {o: bar.add_task(f"Pulling {o}s", total=None) for o in objects}
            reports = pull_persons(
                ctx.db,
                gateway,
                now=ctx.clock(),
                objects=objects,
                progress=lambda o, n: bar.advance(tasks[o], n),
            )
        api_calls = gateway.api_calls
    data = {
        obj: {
            "records": r.rows,
            "created": r.created,
            "linked": r.linked,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "rejected": len(r.rejected),
            "via": r.via,
        }
        for obj, r in reports.items()
    }
    if json_:
        print_json({**data, "api_calls": api_calls})
    else:
        table = Table(title="Pulled from Salesforce")
        for column in (
            "object",
            "records",
            "created",
            "linked",
            "updated",
            "unchanged",
            "rejected",
            "via",
        ):
            table.add_column(column)
        for obj, row in data.items():
            table.add_row(obj, *(str(v) for v in row.values()))
        console.print(table)
        console.print(f"{api_calls} API calls.")
    for r in reports.values():
        for err in r.rejected[:MAX_LISTED_ERRORS]:
            err_console.print(f"[yellow]skipped[/] {err.reason}")
