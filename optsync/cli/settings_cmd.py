"""``optsync settings``: the unsubscribe-sync settings."""

from __future__ import annotations

import typer
from rich.table import Table

from optsync.cli.common import app_context, console, print_json
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
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Change the unsubscribe-sync settings (only the options given)."""
    changes: dict[str, object] = {}
    if sync_enabled is not None:
        if sync_enabled.lower() not in _BOOL:
            raise typer.BadParameter("use true or false", param_hint="--sync-enabled")
        changes["sync_enabled"] = _BOOL[sync_enabled.lower()]
    for key, value in (
        ("field", field),
        ("sales_opt_out_field", sales_opt_out_field),
        ("schedule", schedule),
        ("timezone", timezone),
        ("live_pull", live_pull),
        ("poll_interval_s", poll_interval),
    ):
        if value is not None:
            changes[key] = value
    with app_context() as ctx, ctx.db.transaction() as session:
        view = sync_settings.update_settings(session, changes, actor="cli", now=ctx.clock())
    if json_:
        print_json(view.as_dict())
    else:
        _show(view)
