"""``optsync db``: schema migrations."""

from __future__ import annotations

import typer

from optsync.cli.common import app_context, console

app = typer.Typer(help="Database schema: apply migrations, show the version.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration (safe to run again)."""
    with app_context(require_schema=False) as ctx:
        before = ctx.db.current_revision()
        ctx.db.upgrade()
        after = ctx.db.current_revision()
    if before == after:
        console.print(f"Database already at revision {after}.")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to revision {after}.")


@app.command("current")
def current() -> None:
    """Print the schema revision of the database and of this version of optsync."""
    with app_context(require_schema=False) as ctx:
        console.print(f"database: {ctx.db.current_revision() or 'empty'}")
        console.print(f"optsync:  {ctx.db.head_revision()}")
