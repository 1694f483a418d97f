"""``optsync settings``: the unsubscribe-sync settings."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import typer
from rich.table import Table

from optsync.cli.common import app_context, console, err_console, print_json
from optsync.domain.schedule import next_run
from optsync.services import sync_settings

app = typer.Typer(help="Unsubscribe-sync settings.", no_args_is_help=True)

_BOOL = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False}


def _show(view: sync_settings.SyncSettingsView) -> None:
    table = Table(show_header=False, title="Unsubscribe sync")
    table.add_row("sync_enabled", str(view.sync_enabled).lower())
    table.add_row("field", f"{view.field} ({view.salesforce_field})")
    table.add_row("sales_opt_out_field", view.sales_opt_out_field)
    table.add_row("schedule", view.schedule)
    table.add_row("timezone", view.timezone)
    table.add_row("live_pull", view.live_pull)
    table.add_row("poll_interval_s", str(view.poll_interval_s))
    table.add_row("link_rule", view.link_rule)
    table.add_row("suppress_unknown", str(view.suppress_unknown).lower())
    table.add_row("pushes write", view.push_field())
    console.print(table)


@app.command("show")
def show(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the unsubscribe-sync settings."""
    with app_context() as ctx, ctx.db.transaction() as session:
        view = sync_settings.get_settings(session)
    if json_:
        print_json(view.as_dict())
    else:
        _show(view)


def _gap_words(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    if minutes <= 1:
        return "every minute"
    return f"every {minutes} minutes"


def warn_if_frequent(view: sync_settings.SyncSettingsView, now: datetime) -> None:
    """The sync reads every opted-out record on both sides: meant nightly, it is accepted
    at any rate, but a schedule firing more often than hourly gets a warning line."""
    runs = [now]
    for _ in range(24):
        runs.append(next_run(view.schedule, view.timezone, runs[-1]))
    gap = min(b - a for a, b in itertools.pairwise(runs[1:]))
    if gap < timedelta(hours=1):
        err_console.print(
            f"[yellow]warning:[/] --schedule '{view.schedule}' runs the sync {_gap_words(gap)}; "
            "each run reads every opted-out record in Salesforce, and real-time pushes and "
            "live pull already carry single changes. A nightly time such as '0 20 * * *' "
            "is usual.",
            highlight=False,
            soft_wrap=True,
        )


@app.command("set")
def set_(
    sync_enabled: str = typer.Option(None, "--sync-enabled", help="true or false."),
    field: str = typer.Option(None, "--field", help="email_opt_out or sales_opt_out."),
    sales_opt_out_field: str = typer.Option(
        None, "--sales-opt-out-field", help="API name of the custom checkbox."
    ),
    schedule: str = typer.Option(None, "--schedule", help="Cron expression, e.g. '0 20 * * *'."),
    timezone: str = typer.Option(None, "--timezone", help="IANA zone, e.g. America/Los_Angeles."),
    live_pull: str = typer.Option(
        None,
        "--live-pull",
        help="auto (Change Data Capture where enabled, else polling), cdc, poll or off.",
    ),
    poll_interval: int = typer.Option(
        None, "--poll-interval", help="Seconds between polls when polling (15-3600)."
    ),
    link_rule: str = typer.Option(
        None,
        "--link-rule",
        help="Which record of an address a person links to: contact_then_lead, "
        "lead_then_contact, contact_only, lead_only or off.",
    ),
    suppress_unknown: str = typer.Option(
        None,
        "--suppress-unknown",
        help="true or false: a Salesforce opt-out of an unknown address adds a suppressed person.",
    ),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Change the unsubscribe-sync settings (only the options given)."""
    changes: dict[str, object] = {}
    if sync_enabled is not None:
        if sync_enabled.lower() not in _BOOL:
            raise typer.BadParameter("use true or false", param_hint="--sync-enabled")
        changes["sync_enabled"] = _BOOL[sync_enabled.lower()]
    if suppress_unknown is not None:
        if suppress_unknown.lower() not in _BOOL:
            raise typer.BadParameter("use true or false", param_hint="--suppress-unknown")
        changes["suppress_unknown"] = _BOOL[suppress_unknown.lower()]
    for key, value in (
        ("field", field),
        ("sales_opt_out_field", sales_opt_out_field),
        ("schedule", schedule),
        ("timezone", timezone),
        ("live_pull", live_pull),
        ("poll_interval_s", poll_interval),
        ("link_rule", link_rule),
    ):
        if value is not None:
            changes[key] = value
    with app_context() as ctx, ctx.db.transaction() as session:
        view = sync_settings.update_settings(session, changes, actor="cli", now=ctx.clock())
        now = ctx.clock()
    if schedule is not None:
        warn_if_frequent(view, now)
    if json_:
        print_json(view.as_dict())
    else:
        _show(view)
