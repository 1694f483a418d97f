"""``optsync link EMAIL``: a person's unsubscribe URL and List-Unsubscribe headers."""

from __future__ import annotations

import typer
from sqlalchemy.orm import Session

from optsync.cli.common import app_context, console, err_console, print_json
from optsync.services.links import UnsubscribeLink, UnsubscribeLinks
from optsync.services.optouts import parse_email
from optsync.services.person_views import find_by_email
from optsync.services.transactions import in_transaction


def link(
    email: str = typer.Argument(..., help="The address to make a link for (added if new)."),
    json_: bool = typer.Option(False, "--json", help="Print JSON: url and headers."),
) -> None:
    """Print the person's unsubscribe URL and the headers to put in outgoing email."""
    normal = parse_email(email, "EMAIL")
    with app_context() as ctx:
        links = UnsubscribeLinks.from_settings(ctx.settings)

        def make(session: Session) -> tuple[UnsubscribeLink, bool]:
            known = find_by_email(session, normal) is not None
            return links.link_for(session, normal, ctx.clock()), not known

        made, added = in_transaction(ctx.db, make)
    if added:
        err_console.print(
            f"Added {normal} as a new person, with no Salesforce record yet "
            "(optsync persons pull links it once a Contact or Lead has this address).",
            highlight=False,
            soft_wrap=True,
        )
    if json_:
        print_json(made.as_dict())
        return
    console.print(made.url, highlight=False, soft_wrap=True)
    for name, value in made.headers.items():
        console.print(f"{name}: {value}", highlight=False, soft_wrap=True)
