"""``optsync link EMAIL``: a person's unsubscribe URL and List-Unsubscribe headers."""

from __future__ import annotations

import typer

from optsync.cli.common import app_context, console, print_json
from optsync.services.links import UnsubscribeLinks
from optsync.services.transactions import in_transaction


def link(
    email: str = typer.Argument(..., help="The address to make a link for (added if new)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON: url and headers."),
) -> None:
    """Print the person's unsubscribe URL and the headers to put in outgoing email."""
    with app_context() as ctx:
        links = UnsubscribeLinks.from_settings(ctx.settings)
        made = in_transaction(ctx.db, lambda s: links.link_for(s, email, ctx.clock()))
    if json_:
        print_json(made.as_dict())
        return
    console.print(made.url, highlight=False, soft_wrap=True)
    for name, value in made.headers.items():
        console.print(f"{name}: {value}", highlight=False, soft_wrap=True)
