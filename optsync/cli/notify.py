"""``optsync notify``: where failed runs and stuck pushes are announced (email, webhook)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from optsync.cli.accounts import cli_actor
from optsync.cli.common import app_context, console, err_console, print_json
from optsync.services.notifications.dispatch import send_test
from optsync.services.notifications.settings import (
    KEEP,
    NotificationSettingsView,
    get_notification_settings,
    update_notification_settings,
)

app = typer.Typer(
    help="Notifications of failed runs and stuck pushes, by email and/or webhook.",
    no_args_is_help=True,
)

_BOOL = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False}


def _show(view: NotificationSettingsView) -> None:
    table = Table(show_header=False, title="Notifications")
    table.add_row("email_enabled", str(view.email_enabled).lower())
    table.add_row("smtp", f"{view.smtp_host or '—'}:{view.smtp_port} ({view.smtp_security})")
    table.add_row("smtp_username", view.smtp_username or "—")
    table.add_row("smtp_password", "stored" if view.smtp_password_stored else "not set")
    table.add_row("email_from", view.email_from or "—")
    table.add_row("email_to", ", ".join(view.email_to) or "—")
    table.add_row("webhook_enabled", str(view.webhook_enabled).lower())
    table.add_row("webhook_url", view.webhook_url or "—")
    table.add_row("webhook_secret", "stored" if view.webhook_secret_stored else "not set")
    table.add_row("webhook", f"timeout {view.webhook_timeout_s} s, {view.webhook_retries} retries")
    table.add_row("stuck_after_min", str(view.stuck_after_min))
    table.add_row("notify_resolved", str(view.notify_resolved).lower())
    console.print(table)


@app.command("show")
def show(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the notification settings (secrets: only whether one is stored)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        view = get_notification_settings(session, ctx.settings.resolved_secret_key)
    if json_:
        print_json(view.as_dict())
    else:
        _show(view)


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() not in _BOOL:
        from optsync.errors import UsageError

        raise UsageError(f"--{name}: give true or false.", field=name.replace("-", "_"))
    return _BOOL[value.lower()]


@app.command("set")
def set_(
    email: str = typer.Option(None, "--email", help="true or false: send by email."),
    smtp_host: str = typer.Option(None, "--smtp-host", help="SMTP server host."),
    smtp_port: int = typer.Option(None, "--smtp-port", help="SMTP port (587 starttls, 465 tls)."),
    smtp_security: str = typer.Option(None, "--smtp-security", help="none, starttls or tls."),
    smtp_username: str = typer.Option(None, "--smtp-username", help="SMTP user ('' for none)."),
    smtp_password_stdin: bool = typer.Option(
        False,
        "--smtp-password-stdin",
        help="Read the SMTP password from stdin (never an argument).",
    ),
    clear_smtp_password: bool = typer.Option(
        False, "--clear-smtp-password", help="Remove the stored SMTP password."
    ),
    email_from: str = typer.Option(None, "--from", help="Sender address."),
    email_to: str = typer.Option(None, "--to", help="Recipients, comma-separated."),
    webhook: str = typer.Option(None, "--webhook", help="true or false: POST to the webhook."),
    webhook_url: str = typer.Option(None, "--webhook-url", help="https:// URL ('' for none)."),
    webhook_timeout: int = typer.Option(None, "--webhook-timeout", help="Seconds, 1-60."),
    webhook_retries: int = typer.Option(None, "--webhook-retries", help="Retries, 0-5."),
    new_webhook_secret: bool = typer.Option(
        False, "--new-webhook-secret", help="Generate a new signing secret (printed once)."
    ),
    stuck_after: int = typer.Option(
        None, "--stuck-after", help="Minutes after which a waiting push is stuck (1-1440)."
    ),
    resolved: str = typer.Option(None, "--resolved", help="true or false: say when it clears."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Change the notification settings (only the options given)."""
    changes: dict[str, object] = {}
    for key, value in (
        ("email_enabled", _flag("email", email)),
        ("webhook_enabled", _flag("webhook", webhook)),
        ("notify_resolved", _flag("resolved", resolved)),
        ("smtp_host", smtp_host),
        ("smtp_port", smtp_port),
        ("smtp_security", smtp_security),
        ("smtp_username", smtp_username),
        ("email_from", email_from),
        ("email_to", email_to),
        ("webhook_url", webhook_url),
        ("webhook_timeout_s", webhook_timeout),
        ("webhook_retries", webhook_retries),
        ("stuck_after_min", stuck_after),
    ):
        if value is not None:
            changes[key] = value
    password: object = KEEP
    if smtp_password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif clear_smtp_password:
        password = None
    with app_context() as ctx, ctx.db.transaction() as session:
        saved = update_notification_settings(
            session,
            changes,
            secret_key=ctx.settings.resolved_secret_key,
            actor=cli_actor(),
            now=ctx.clock(),
            smtp_password=password,
            new_webhook_secret=new_webhook_secret,
        )
    if json_:
        data = saved.view.as_dict()
        if saved.new_webhook_secret:
            data["new_webhook_secret"] = saved.new_webhook_secret
        print_json(data)
        return
    _show(saved.view)
    if saved.new_webhook_secret:
        err_console.print(
            "New webhook signing secret (shown once; verify X-Optsync-Signature with it):",
            highlight=False,
        )
        print(saved.new_webhook_secret)


@app.command("test")
def test(
    channel: str = typer.Option(None, "--channel", help="email or webhook (default: both)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send a test notification now; exits 1 if a channel fails."""
    if channel not in (None, "email", "webhook"):
        from optsync.errors import UsageError

        raise UsageError("--channel: give email or webhook.", field="channel")
    with app_context() as ctx:
        out = send_test(
            ctx.db,
            secret_key=ctx.settings.resolved_secret_key,
            base_url=ctx.settings.base_url,
            now=ctx.clock(),
            channel=channel,
        )
    if json_:
        print_json({c: {"ok": v == "sent", "message": v} for c, v in out.items()})
    else:
        for name, result in out.items():
            if result == "sent":
                console.print(f"[green]✓[/] {name}: test sent", highlight=False)
            else:
                err_console.print(f"[red]✗[/] {result}", highlight=False, soft_wrap=True)
    if any(v != "sent" for v in out.values()):
        raise typer.Exit(1)
