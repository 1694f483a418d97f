"""The public unsubscribe endpoints behind the link in every email (no login: the signed
token is the credential).

* ``GET /u/{token}`` shows the address and one button. It never changes anything,
  because link scanners and mail security gateways fetch every link in a message.
* ``POST /u/{token}`` unsubscribes: from that button (source ``page``) or as an RFC 8058
  one-click request from a mailbox provider (body ``List-Unsubscribe=One-Click``, source
  ``one_click``). There is no CSRF token: the signed URL is the credential, and one-click
  POSTs come from providers that never saw our page. Framing is refused by
  ``guards.SECURITY_HEADERS`` so the button cannot be clickjacked.

Bad tokens answer 400 and tokens of unknown persons 404, with the same wording, and no
page ever names an address other than the link owner's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.exceptions import HTTPException

from optsync.bootstrap import Context
from optsync.domain.optout import Source
from optsync.services.bulk_unsubscribes import ByIdRequest
from optsync.services.links import InvalidLinkToken, UnsubscribeLinks
from optsync.store.models import Person
from optsync.web.batching import GroupCommit
from optsync.web.deps import evidence_of, get_context, get_links
from optsync.web.errors import error_responses
from optsync.web.metrics import UNSUBSCRIBES

# Templates ship inside the package and never change while the process runs, so Jinja
# need not stat them on every render (it would, twice per one-click POST).
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(),
        auto_reload=False,
    )
)

router = APIRouter(tags=["unsubscribe pages"])

_FORM_FIELDS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "List-Unsubscribe": {
            "type": "string",
            "enum": ["One-Click"],
            "description": "RFC 8058 one-click request from a mailbox provider.",
        },
        "confirm": {"type": "string", "description": "Sent by the page's button."},
    },
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGE_RESPONSES = error_responses(
    422,
    also={
        400: {
            "description": "The link is not valid (forged, truncated, other key)",
            "content": _HTML,
        },
        404: {"description": "The link's person does not exist (any more)", "content": _HTML},
        503: {
            "description": "The database cannot be reached; nothing was recorded, try again",
            "content": _HTML,
        },
    },
)


def _page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, values, status_code=status)


def _bad_link(request: Request, status: int) -> HTMLResponse:
    return _page(request, "link_error.html", status)


@router.get(
    "/u/{token}",
    response_class=HTMLResponse,
    summary="The unsubscribe page (never changes anything)",
    responses=_PAGE_RESPONSES,
)
def show(
    request: Request,
    token: str,
    ctx: Context = Depends(get_context),
    links: UnsubscribeLinks = Depends(get_links),
) -> HTMLResponse:
    try:
        person_id = links.person_id(token)
    except InvalidLinkToken:
        return _bad_link(request, 400)
    with ctx.db.transaction() as session:
        row = session.execute(
            select(Person.email, Person.unsubscribed).where(Person.id == person_id)
        ).first()
    if row is None:
        return _bad_link(request, 404)
    return _page(request, "unsubscribe.html", email=row.email, unsubscribed=row.unsubscribed)


@router.post(
    "/u/{token}",
    response_class=HTMLResponse,
    summary="Unsubscribe (the page's button, or an RFC 8058 one-click POST)",
    responses=_PAGE_RESPONSES | error_responses(413),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _FORM_FIELDS},
                "multipart/form-data": {"schema": _FORM_FIELDS},
            },
        }
    },
)
async def confirm(request: Request, token: str) -> HTMLResponse:
    # The hot path of a mail campaign (every one-click POST): the signer and the group
    # commit are read straight from the app rather than resolved as dependencies.
    links: UnsubscribeLinks = request.app.state.links
    try:
        person_id = links.person_id(token)
    except InvalidLinkToken:
        return _bad_link(request, 400)
    source = await _source_of(request)
    group: GroupCommit = request.app.state.group_commit
    outcome = await group.submit(
        ByIdRequest(person_id, source, f"person:{person_id}", evidence_of(request))
    )
    if outcome.email is None:
        return _bad_link(request, 404)
    if outcome.changed:
        UNSUBSCRIBES.labels(source.value).inc()
    return _page(request, "unsubscribed.html", email=outcome.email)


async def _source_of(request: Request) -> Source:
    """``one_click`` for the RFC 8058 body (urlencoded or multipart), else ``page``.

    A body that cannot be parsed still unsubscribes (as ``page``): the signed URL was
    POSTed to, and refusing would keep emailing someone who asked to stop."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        body = await request.body()
        try:
            fields = parse_qsl(body.decode("latin-1"), max_num_fields=20)
        except ValueError:
            return Source.PAGE
        one_click = ("List-Unsubscribe", "One-Click") in fields
        return Source.ONE_CLICK if one_click else Source.PAGE
    try:
        async with request.form(max_files=0, max_fields=20) as form:
            value = form.get("List-Unsubscribe")
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return Source.PAGE
    except Exception:
        return Source.PAGE
    return Source.ONE_CLICK if value == "One-Click" else Source.PAGE
