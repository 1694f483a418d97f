"""``optsync salesforce``: store, check and forget the Salesforce connection.

Secrets are read from stdin (``--client-secret-stdin``, ``--password-stdin``) or a
hidden prompt, never from the command line (where ``ps`` and shell history would keep
them), and are never printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from optsync.cli.common import app_context, console, err_console, print_json
from optsync.errors import UsageError
from optsync.salesforce.connection import (
    DEFAULT_API_VERSION,
    ConnectionConfig,
    delete_connection,
    env_overrides,
    load_connection,
    read_private_key,
    resolve_connection,
)
from optsync.services.salesforce_connection import save_tested
from optsync.services.salesforce_setup import setup_checks

app = typer.Typer(help="Salesforce connection and setup checks.", no_args_is_help=True)

DEFAULT_LOGIN_URL = "https://login.salesforce.com"


class _Stdin:
    """Hands out stdin lines in order: secret first, then password, when both are asked."""

    def __init__(self) -> None:
        self._lines: list[str] | None = None

    def next(self, what: str) -> str:
        if self._lines is None:
            self._lines = sys.stdin.read().splitlines()
        if not self._lines:
            raise UsageError(f"expected the {what} on standard input, got nothing.", field=what)
        return self._lines.pop(0).strip()


def _secret(needed: bool, from_stdin: bool, stdin: _Stdin, what: str) -> str | None:
    if from_stdin:
        return stdin.next(what)
    if not needed:
        return None
    return str(typer.prompt(what[0].upper() + what[1:], hide_input=True))


@app.command("connect")
def connect(
    auth: str = typer.Option(
        ..., "--auth", help="jwt (recommended), client_credentials or password."
    ),
    login_url: str = typer.Option(
        DEFAULT_LOGIN_URL,
        "--login-url",
        help="https://login.salesforce.com, https://test.salesforce.com or your My Domain URL.",
    ),
    client_id: str = typer.Option(None, "--client-id", help="Connected app consumer key."),
    client_secret_stdin: bool = typer.Option(
        False,
        "--client-secret-stdin",
        help="Read the consumer secret from stdin (first line) instead of a prompt.",
    ),
    username: str = typer.Option(None, "--username", help="Integration user's username."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read the password (+ security token) from stdin (the line after the secret) "
        "instead of a prompt.",
    ),
    private_key_file: Path = typer.Option(
        None, "--private-key-file", help="PEM RSA private key for the JWT bearer flow."
    ),
    api_version: str = typer.Option(
        DEFAULT_API_VERSION, "--api-version", help="Salesforce API version."
    ),
    ca_bundle: Path = typer.Option(
        None, "--ca-bundle", help="CA bundle to trust (e.g. the emulator's)."
    ),
    no_test: bool = typer.Option(
        False, "--no-test", help="Store without testing the connection first."
    ),
) -> None:
    """Store the Salesforce connection (tested first; a failing one is not stored)."""
    stdin = _Stdin()
    client_secret = _secret(
        auth in ("client_credentials", "password"), client_secret_stdin, stdin, "consumer secret"
    )
    password = _secret(auth == "password", password_stdin, stdin, "password")
    config = ConnectionConfig(
        auth=auth,
        login_url=login_url,
        client_id=client_id,
        client_secret=client_secret,
        username=username,
        password=password,
        private_key=read_private_key(private_key_file) if private_key_file else None,
        api_version=api_version,
        ca_bundle=str(ca_bundle) if ca_bundle else None,  # made absolute by validated()
    ).validated()
    with app_context() as ctx:
        # the same save as the admin form: tested first, stored only if it works
        saved = save_tested(ctx, config, test=not no_test)
    overridden = saved.overridden
    instance = saved.test.instance_url if saved.test else None
    who = f" as {config.username}" if config.username else ""
    tested = f"; connected to {instance}" if instance else " (not tested)"
    console.print(
        f"Stored the Salesforce connection ({config.auth}{who} via {config.login_url}){tested}.",
        highlight=False,
    )
    if overridden:
        err_console.print(
            f"[yellow]note:[/] OPTSYNC_SF_* variables override the stored {', '.join(overridden)}.",
            highlight=False,
        )


@app.command("show")
def show(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the connection in force (stored, with OPTSYNC_SF_* on top), secrets masked."""
    with app_context() as ctx, ctx.db.transaction() as session:
        stored = load_connection(session, ctx.settings.resolved_secret_key) is not None
        config = resolve_connection(ctx.settings, session)
    if config is None:
        raise UsageError("no Salesforce connection; run `optsync salesforce connect`.")
    data = {**config.masked(), "stored": stored}
    if json_:
        print_json(data)
        return
    table = Table(show_header=False, title="Salesforce connection")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


@app.command("check")
def check(json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run the setup checks; exit 1 if any fails."""
    with app_context() as ctx:
        checks = setup_checks(ctx)  # no transaction open during the Salesforce calls
    ok = all(c.ok for c in checks)
    if json_:
        print_json({"ok": ok, "checks": [c.as_dict() for c in checks]})
    else:
        table = Table(title="Salesforce setup checks")
        for column in ("check", "result", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(
                c.name, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail, c.fix or ""
            )
        console.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command("disconnect")
def disconnect() -> None:
    """Forget the stored connection (OPTSYNC_SF_* variables, if set, still apply)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        removed = delete_connection(session)
        overridden = env_overrides(ctx.settings)
    console.print(
        "Removed the stored Salesforce connection."
        if removed
        else "No Salesforce connection was stored."
    )
    if overridden:
        err_console.print("[yellow]note:[/] OPTSYNC_SF_* variables still configure a connection.")
