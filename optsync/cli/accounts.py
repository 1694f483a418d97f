"""``optsync user`` and ``optsync token``: people who sign in, and API tokens."""

from __future__ import annotations

import sys

import typer

from optsync.cli.common import app_context, console, err_console
from optsync.errors import UsageError
from optsync.services import accounts

user_app = typer.Typer(help="Users of the web app.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the REST API.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    email: str = typer.Argument(..., help="The user's email address (their login)."),
    admin: bool = typer.Option(
        False, "--admin", help="Give admin rights (settings, re-subscribes)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create a user who can sign in to the web app."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise UsageError(
            "password: no terminal to ask on.",
            field="password",
            fix="Pipe it in with --password-stdin.",
        )
    with app_context() as ctx, ctx.db.transaction() as session:
        user = accounts.add_user(session, email, password, is_admin=admin, now=ctx.clock())
        role = "admin" if user.is_admin else "member"
    console.print(f"Created {role} {user.email}.")


@token_app.command("create")
def token_create(
    name: str = typer.Argument(..., help="What the token is for, e.g. 'mailer'."),
    admin: bool = typer.Option(False, "--admin", help="Allow admin-only API calls."),
) -> None:
    """Print a new API token alone on stdout (only its hash is stored)."""
    with app_context() as ctx, ctx.db.transaction() as session:
        token = accounts.create_token(session, name, is_admin=admin, now=ctx.clock())
    print(token)
    err_console.print("Store it now: it cannot be shown again.", style="dim")
