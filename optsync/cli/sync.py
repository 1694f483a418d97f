"""``optsync sync``: run the bidirectional unsubscribe sync now, and list past runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.progress import Progress, TaskID
from rich.table import Table
from sqlalchemy import select

from optsync import logs
from optsync.cli.common import (
    app_context,
    console,
    display_zone,
    err_console,
    local_time,
    print_json,
    progress_bar,
)
from optsync.errors import UsageError
from optsync.salesforce.gateway import Profile, open_gateway
from optsync.services.sync.report import PREVIEW_CSV_PATH, preview_csv
from optsync.services.sync_run import PHASES, history, run_sync
from optsync.store.db import Database
from optsync.store.models import Person

app = typer.Typer(
    help="The nightly unsubscribe sync: run it now, list past runs.", no_args_is_help=True
)

_LABELS = {
    "check": "Setup check",
    "fetch": "Fetch Salesforce opt-outs",
    "diff": "Compare",
    "pull": "Unsubscribe locally",
    "push": "Set the field in Salesforce",
}


LISTED = 10
"""Records of each direction a dry run prints (``--json`` has the first 100, ``--csv`` all)."""


class _PhaseBars:
    """One Rich progress bar per phase, on stderr (stdout stays clean for ``--json``)."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(_LABELS.get(phase, phase), total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)


@app.command("run")
def run(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Compute the report only; change nothing on either side."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the run report as JSON on stdout."),
    full: bool = typer.Option(
        False,
        "--full",
        help="Re-read every Contact and Lead into the record mirror, not only the records "
        "changed since the last run.",
    ),
    csv_file: Path | None = typer.Option(
        None,
        "--csv",
        metavar="FILE",
        help="With --dry-run: write every record it would pull and push to FILE as CSV.",
    ),
) -> None:
    """Run the bidirectional sync now. Exits 1 if the run failed. A dry run lists the
    first records it would pull and push."""
    if csv_file is not None:
        _check_csv_target(csv_file, dry_run)
    written: int | None = None
    with app_context() as ctx, progress_bar("Sync") as bar:
        logs.configure(ctx.settings.log_format)
        report = run_sync(
            ctx.db,
            lambda: open_gateway(ctx, Profile.JOB),
            clock=ctx.clock,
            trigger="manual",
            dry_run=dry_run,
            progress=_PhaseBars(bar),
            full=full,
        )
        zone = display_zone(ctx)
        shown = report.get("failures", [])[:20]
        emails = _emails(ctx.db, [f["person_id"] for f in shown if f["person_id"] is not None])
        previewed = dry_run and report["status"] == "succeeded"
        if csv_file is not None and previewed:
            written = _write_preview(ctx.db, report, csv_file)
        csv_url = (
            f"{ctx.settings.base_url.rstrip('/')}{PREVIEW_CSV_PATH.format(run_id=report['id'])}"
        )
    if json_:
        print_json(report)
    else:
        console.print(report_table(report, zone))
        if previewed:
            for direction in ("pull", "push"):
                console.print()
                console.print(preview_table(report, direction))
            if written is not None:
                console.print(f"Wrote all {written:,} records to {csv_file}.", highlight=False)
            else:
                console.print(
                    f"Every record: add --csv FILE (a new dry run writes them all), or "
                    f"download {csv_url} (signed in as an admin).",
                    highlight=False,
                )
        for failure in shown:
            who = emails.get(failure["person_id"])
            record = f"{who} ({failure['salesforce_id']})" if who else failure["salesforce_id"]
            err_console.print(
                f"[red]{failure['code']}[/] {record}: {failure['message']} — {failure['fix']}",
                highlight=False,
                soft_wrap=True,
            )
    if report["status"] != "succeeded":
        if not json_:
            err_console.print(f"[red]error:[/] {report['error']}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _check_csv_target(path: Path, dry_run: bool) -> None:
    """Refuse ``--csv`` before the run spends any API call: only a dry run has records
    to write, and the file must be writable."""
    if not dry_run:
        raise UsageError(
            "--csv: only a dry run lists the records it would pull and push; add --dry-run.",
            field="--csv",
        )
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--csv: {path} is a folder; name a file.", field="--csv")
    if not parent.is_dir():
        raise UsageError(f"--csv: the folder {parent} does not exist.", field="--csv")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--csv: {path} cannot be written.", field="--csv")


def _write_preview(db: Database, report: dict[str, Any], path: Path) -> int:
    """Write the dry run's stored records to ``path``; returns how many."""
    with db.transaction() as session:
        lines = list(preview_csv(session, report["id"], report["field"]))
    with path.open("w", encoding="utf-8", newline="") as f:
        f.writelines(lines)
    return len(lines) - 1


def _many(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def preview_table(report: dict[str, Any], direction: str) -> Table:
    """The first :data:`LISTED` records a dry run would pull or push, in 80 columns:
    address, record id, object; the field and the totals around them."""
    pull = direction == "pull"
    rows = report["would_pull" if pull else "would_push"]
    count = report["pulled" if pull else "pushed"]
    stored = report.get(f"would_{direction}_total", len(rows))
    field = report["field"]
    title = (
        f"Would pull {count:,} ({field} set in Salesforce)"
        if pull
        else f"Would push {count:,} (set {field} in Salesforce)"
    )
    notes = []
    listed = rows[:LISTED]
    if stored > len(listed):
        notes.append(f"… and {stored - len(listed):,} more")
    if pull and report.get("suppressed_unknown"):
        n = report["suppressed_unknown"]
        notes.append(f"{n:,} of them new addresses, to add as suppressed persons")
    if not rows and not notes:
        notes.append("nothing")
    table = Table(
        title=title,
        title_justify="left",
        caption="; ".join(notes) or None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("address", overflow="fold", ratio=1)
    table.add_column("record", no_wrap=True)
    table.add_column("object", no_wrap=True)
    for r in listed:
        email = r["email"] if r["person_id"] is not None else f"{r['email']} (new)"
        table.add_row(email, r["salesforce_id"] or "-", r["object"] or "-")
    return table


def _emails(db: Database, person_ids: list[int]) -> dict[int, str]:
    """Persons are shown to people by address (logs never carry one)."""
    if not person_ids:
        return {}
    with db.transaction() as session:
        rows = session.execute(select(Person.id, Person.email).where(Person.id.in_(person_ids)))
        return {int(pid): str(email) for pid, email in rows}


def report_table(report: dict[str, Any], zone: ZoneInfo | None = None) -> Table:
    """The run report for people: times in ``zone`` (the sync settings' zone)."""
    zone = zone or ZoneInfo("UTC")
    kind = "Dry run" if report["dry_run"] else "Sync run"
    table = Table(title=f"{kind} #{report['id']} — {report['status']}", show_header=False)
    would = " (would)" if report["dry_run"] else ""
    rows: list[tuple[str, Any]] = [
        ("field", report["field"]),
        ("trigger", report["trigger"]),
        ("started", local_time(report["started_at"], zone)),
        ("duration", f"{report['duration_s']} s" if report["duration_s"] is not None else "-"),
        ("opted out in Salesforce", f"{report['remote_opted_out']:,}"),
        ("unsubscribed here", f"{report['local_unsubscribed']:,}"),
        (f"pulled{would}", f"{report['pulled']:,}"),
        (f"pushed{would}", f"{report['pushed']:,}"),
        ("failed", ", ".join(f"{k}: {v}" for k, v in report["failed"].items()) or "0"),
        # with the address counts: persons without a primary record, and (below) the
        # addresses no record carries; before them the one count meant the latter
        (
            "no primary record" if "mirror" in report else "not in Salesforce",
            f"{report['not_linked']:,}",
        ),
        ("re-opted out", str(len(report["reopted_out"]))),
        ("API calls", str(report["api_calls"])),
    ]
    rows += address_rows(report)
    if report.get("error"):
        rows.append(("error", report["error"]))
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def address_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The records-per-address counts of a run (issue 16), for runs that have them."""
    if "records_set" not in report and "mirror" not in report:
        return []
    mirror = report.get("mirror") or {}
    read = mirror.get("read")
    records_set = report.get("records_set") or {}
    how = f"{read}, {mirror['why']}" if mirror.get("why") else read
    return [
        ("records read", f"{mirror.get('records_read', 0):,} ({how})" if read else "-"),
        (
            "records set",
            ", ".join(f"{obj}: {n:,}" for obj, n in records_set.items()) or "0",
        ),
        ("addresses fanned out", f"{report.get('addresses_fanned_out', 0):,}"),
        ("duplicate addresses", f"{report.get('duplicates', 0):,}"),
        ("persons auto-linked", f"{report.get('auto_linked', 0):,}"),
        ("unknown addresses suppressed", f"{report.get('suppressed_unknown', 0):,}"),
        ("not in Salesforce", f"{report.get('not_in_salesforce', 0):,}"),
    ]


@app.command("history")
def history_(
    json_: bool = typer.Option(False, "--json", help="Print the reports as a JSON list."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many runs, newest first."),
) -> None:
    """Past runs, newest first."""
    with app_context() as ctx:
        runs = history(ctx.db, limit)
        zone = display_zone(ctx)
    if json_:
        print_json(runs)
        return
    console.print(history_table(runs, zone))


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.0f} min"


def history_table(runs: list[dict[str, Any]], zone: ZoneInfo) -> Table:
    """Past runs in 80 columns: one line per run, times in ``zone``, no inner borders."""
    table = Table(
        title="Sync runs",
        caption=f"times in {zone.key}; --json for every field",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column, right in (
        ("run", True),
        ("started", False),
        ("kind", False),
        ("status", False),
        ("took", True),
        ("pulled", True),
        ("pushed", True),
        ("failed", True),
        ("API", True),
    ):
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for r in runs:
        # a dry run is always started by hand; the scheduler never dry-runs
        kind = "dry run" if r["dry_run"] else r["trigger"]
        table.add_row(
            str(r["id"]),
            local_time(r["started_at"], zone, short=True),
            kind,
            r["status"],
            _took(r["duration_s"]),
            f"{r['pulled']:,}",
            f"{r['pushed']:,}",
            f"{sum(r['failed'].values()):,}",
            f"{r['api_calls']:,}",
        )
    return table


__all__ = ["PHASES", "app"]
