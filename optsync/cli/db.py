"""``optsync db``: schema migrations and pruning."""

from __future__ import annotations

import typer

from optsync.cli.common import app_context, console
from optsync.services.retention import prune_now

app = typer.Typer(
    help="Database schema: apply migrations, show the version, prune old rows.",
    no_args_is_help=True,
)


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


@app.command("prune")
def prune() -> None:
    """Delete sent and cancelled pushes and old run failures past their retention
    (OPTSYNC_KEEP_PUSHES_DAYS, OPTSYNC_KEEP_RUN_FAILURES_DAYS); the ledger is kept forever.
    A running worker does this once an hour."""
    with app_context() as ctx:
        done = prune_now(ctx.db, ctx.settings, ctx.clock())
    console.print(f"Deleted {done.pushes} old pushes and {done.run_failures} old run failures.")
