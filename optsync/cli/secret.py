"""``optsync secret rotate``: a new ``OPTSYNC_SECRET_KEY`` without losing anything.

Where the key lives decides how the new one is set:

* the data dir's ``secret.key`` (the default, generated once): a new key is generated
  (or read with ``--new-key-stdin``), written to ``secret.key.new``, the database is
  re-keyed in one transaction, then the file replaces ``secret.key``;
* ``OPTSYNC_SECRET_KEY`` in the environment: the operator passes the new key with
  ``--new-key-stdin``, the database is re-keyed, and the operator sets the variable to
  the new key on every machine.

Either way, restart ``serve`` and every ``worker`` afterwards (they read the key once).
"""

from __future__ import annotations

import os
import secrets
import sys

import typer

from optsync.cli.accounts import cli_actor
from optsync.cli.common import app_context, console
from optsync.errors import UsageError
from optsync.services import secret_rotation

app = typer.Typer(help="The secret key (OPTSYNC_SECRET_KEY).", no_args_is_help=True)


@app.command("rotate")
def rotate(
    new_key_stdin: bool = typer.Option(
        False, "--new-key-stdin", help="Read the new key from standard input."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Replace the secret key: stored Salesforce credentials are re-encrypted, links
    already sent keep working, every web session ends."""
    with app_context() as ctx:
        settings = ctx.settings
        from_env = settings.secret_key is not None and bool(settings.secret_key.get_secret_value())
        if from_env and not new_key_stdin:
            raise UsageError(
                "OPTSYNC_SECRET_KEY is set in the environment, so optsync cannot store a new "
                "one for you.",
                field="OPTSYNC_SECRET_KEY",
                fix="Generate a key (e.g. `openssl rand -base64 48`), pass it with "
                "--new-key-stdin, then set OPTSYNC_SECRET_KEY to it everywhere.",
            )
        new_key = sys.stdin.readline().strip() if new_key_stdin else secrets.token_urlsafe(48)
        old_key = settings.resolved_secret_key
        secret_rotation.check_new_key(old_key, new_key)
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("confirmation: no terminal to ask on.", fix="Pass --yes.")
            if not typer.confirm("Rotate the secret key? Everyone is signed out.", default=False):
                raise typer.Exit(1)
        key_file = settings.ensure_data_dir() / "secret.key"
        staged = key_file.with_name("secret.key.new")
        if not from_env:
            staged.unlink(missing_ok=True)
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(new_key + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        try:
            with ctx.db.transaction() as session:
                report = secret_rotation.rotate(
                    session, old_key, new_key, actor=cli_actor(), now=ctx.clock()
                )
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if not from_env:
            os.replace(staged, key_file)
    console.print(
        f"Rotated the secret key: Salesforce credentials "
        f"{'re-encrypted' if report.credentials_resealed else 'none stored'}, "
        f"{report.retired_link_keys} retired link key(s) kept so old links keep working, "
        f"{report.sessions_ended} user(s) signed out.",
        soft_wrap=True,
    )
    if from_env:
        console.print(
            "Now set OPTSYNC_SECRET_KEY to the new key on every machine, then restart serve "
            "and the workers.",
            soft_wrap=True,
        )
    else:
        console.print(
            f"The new key is in {key_file}. Restart serve and the workers.", soft_wrap=True
        )
