"""``optsync user``, ``optsync token`` and ``optsync audit``: people who sign in, API
tokens, and the log of every change to them."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import typer
from rich.table import Table

from optsync.cli.common import app_context, console, err_console, print_json
from optsync.errors import UsageError
from optsync.services import accounts

user_app = typer.Typer(help="Users of the web app.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the REST API.", no_args_is_help=True)
audit_app = typer.Typer(help="The admin audit log (users, tokens, keys).", no_args_is_help=True)


def cli_actor() -> str:
    """How the audit log names whoever runs the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    raise UsageError(
        "password: no terminal to ask on.",
        field="password",
        fix="Pipe it in with --password-stdin.",
    )


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("confirmation: no terminal to ask on.", fix="Pass --yes.")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def _when(value: object) -> str:
    return "—" if value is None else str(value)[:16].replace("T", " ")


PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from standard input."
)
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


@user_app.command("add")
def user_add(
    email: str = typer.Argument(..., help="The user's email address (their login)."),
    admin: bool = typer.Option(
        False, "--admin", help="Give admin rights (settings, re-subscribes)."
    ),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Create a user who can sign in to the web app."""
    password = _read_password(password_stdin)
    with app_context() as ctx, ctx.db.transaction() as session:
        user = accounts.add_user(
            session, email, password, is_admin=admin, now=ctx.clock(), actor=cli_actor()
        )
        role = "admin" if user.is_admin else "member"
    console.print(f"Created {role} {user.email}.")


@user_app.command("list")
def user_list(as_json: bool = JSON) -> None:
    """Every user: address, role, created, last sign-in."""
    with app_context() as ctx, ctx.db.transaction() as session:
        users = accounts.list_users(session)
    if as_json:
        print_json([u.as_dict() for u in users])
        return
    table = Table("email", "role", "created", "last sign-in")
    for u in users:
        table.add_row(u.email, u.role, _when(u.created_at), _when(u.last_login_at))
    console.print(table)


@user_app.command("remove")
def user_remove(
    email: str = typer.Argument(..., help="The user to remove."),
    yes: bool = YES,
) -> None:
    """Remove a user; their sessions end at their next request. The last admin stays."""
    _confirm(f"Remove {email}? Their sessions end at once.", yes)
    with app_context() as ctx, ctx.db.transaction() as session:
        accounts.remove_user(session, email, actor=cli_actor(), now=ctx.clock())
    console.print(f"Removed {email.strip().lower()}.")


@user_app.command("set-role")
def user_set_role(
    email: str = typer.Argument(..., help="The user."),
    role: str = typer.Argument(..., help="admin or member.", metavar="ROLE"),
) -> None:
    """Make a user an admin or a member (the last admin cannot be made a member)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        changed = accounts.set_role(session, email, role, actor=cli_actor(), now=ctx.clock())
    article = "an admin" if role == "admin" else "a member"
    state = "is now" if changed else "already was"
    console.print(f"{email.strip().lower()} {state} {article}.")


@user_app.command("reset-password")
def user_reset_password(
    email: str = typer.Argument(..., help="The user."),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Set a new password; every session of the user ends."""
    password = _read_password(password_stdin)
    with app_context() as ctx, ctx.db.transaction() as session:
        accounts.reset_password(session, email, password, actor=cli_actor(), now=ctx.clock())
    console.print(f"New password set for {email.strip().lower()}; their sessions have ended.")


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="What the token is for, e.g. 'mailer' (unique)."),
    admin: bool = typer.Option(False, "--admin", help="Allow admin-only API calls."),
) -> None:
    """Print a new API token alone on stdout (only its hash is stored)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        token = accounts.create_token(
            session, name, is_admin=admin, now=ctx.clock(), actor=cli_actor()
        )
    print(token)
    err_console.print("Store it now: it cannot be shown again.", style="dim")


@token_app.command("list")
def token_list(as_json: bool = JSON) -> None:
    """Every token: name, role, created, last used, revoked (never the token itself)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        tokens = accounts.list_tokens(session)
    if as_json:
        print_json([t.as_dict() for t in tokens])
        return
    table = Table("id", "name", "role", "created", "last used", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.role,
            _when(t.created_at),
            _when(t.last_used_at),
            _when(t.revoked_at) if t.revoked_at else "",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    name_or_id: str = typer.Argument(..., help="The token's name or id (`token list`)."),
) -> None:
    """Revoke a token: its next request answers 401."""
    with app_context() as ctx, ctx.db.transaction() as session:
        view = accounts.revoke_token(session, name_or_id, actor=cli_actor(), now=ctx.clock())
    console.print(f"Revoked token {view.name} (id {view.id}).")


@audit_app.command("export")
def audit_export(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the CSV here (default: standard output)."
    ),
) -> None:
    """The whole admin audit log as CSV, oldest first."""
    with app_context() as ctx, ctx.db.transaction() as session:
        entries = list(reversed(accounts.audit_entries(session, limit=None)))
    lines = accounts.audit_csv(entries)
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        return
    with output.open("w", newline="", encoding="utf-8") as fh:
        fh.writelines(lines)
    console.print(f"Wrote {len(entries)} entries to {output}.")
