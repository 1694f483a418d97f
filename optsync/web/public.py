"""The public unsubscribe endpoints behind the link in every email (no login: the signed
token is the credential).

* ``GET /u/{token}`` shows the address and one button. It never changes anything,
  because link scanners and mail security gateways fetch every link in a message.
* ``POST /u/{token}`` unsubscribes: from that button (source ``page``) or as an RFC 8058
  one-click request from a mailbox provider (body ``List-Unsubscribe=One-Click``, source
  ``one_click``). There is no CSRF token: the signed URL is the credential, and one-click
  POSTs come from providers that never saw our page. Framing is refused by
  ``guards.SECURITY_HEADERS`` so the button cannot be clickjacked.

* ``POST /u/{token}/undo`` undoes that unsubscribe within ten minutes (the confirmation
  page's Undo button; its signed undo token is the credential, bound to the person and
  to the ledger entry, so a cross-site form cannot forge one): a re-subscribe through the
  one write path, refused (409, nothing changed) once the window has passed or when the
  person's state changed since.

The page may ask why (``OPTSYNC_PUBLIC_REASONS``); the answer goes into the ledger
evidence of the unsubscribe, and a bad answer never stops the unsubscribe. Every text is
in the language ``Accept-Language`` prefers among those we ship (``web.i18n``), and the
header shows the sender's name and logo (``OPTSYNC_PUBLIC_SENDER_NAME``,
``OPTSYNC_PUBLIC_LOGO``; a logo file under the data dir is served at ``/public/logo``).

Bad tokens answer 400 and tokens of unknown persons 404, with the same wording, and no
page ever names an address other than the link owner's.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import select
from starlette.exceptions import HTTPException

from optsync.bootstrap import Context
from optsync.domain.optout import UNDO_WINDOW, ReasonProblem, Source, UndoRefusal, page_reason
from optsync.errors import NotFoundError
from optsync.services.bulk_unsubscribes import ByIdRequest
from optsync.services.links import InvalidLinkToken, InvalidUndoToken, UnsubscribeLinks
from optsync.services.optouts import undo_unsubscribe, undoable_entry
from optsync.services.transactions import in_transaction
from optsync.settings import LOGO_TYPES, Settings
from optsync.store.models import Person
from optsync.web import i18n
from optsync.web.address_markup import address_html
from optsync.web.batching import GroupCommit
from optsync.web.deps import evidence_of, get_context, get_links
from optsync.web.errors import error_responses
from optsync.web.guards import SECURITY_HEADERS
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
        "reason": {
            "type": "string",
            "description": "Optional: one of the reasons OPTSYNC_PUBLIC_REASONS offers.",
        },
        "reason_text": {
            "type": "string",
            "maxLength": 500,
            "description": "Optional: the recipient's own words (where `other` is offered).",
        },
    },
}
_UNDO_FIELDS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "undo": {"type": "string", "description": "The undo token the confirmation page gave."}
    },
    "required": ["undo"],
}
UNDO_MINUTES = int(UNDO_WINDOW.total_seconds() // 60)
LOGO_PATH = "/public/logo"
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


def _logo_src(settings: Settings, root_path: str) -> str | None:
    logo = settings.public_logo
    if logo is None:
        return None
    return logo if logo.lower().startswith("https://") else root_path + LOGO_PATH


def _csp_for(logo: str | None) -> str | None:
    """The Content-Security-Policy with the logo's origin allowed as an image source
    (the validated URL's scheme and host only), or None for the default policy."""
    if logo is None or not logo.lower().startswith("https://"):
        return None
    url = urlsplit(logo)
    origin = f"https://{url.hostname}" + (f":{url.port}" if url.port else "")
    return SECURITY_HEADERS["Content-Security-Policy"].replace(
        "img-src 'self'", f"img-src 'self' {origin}", 1
    )


def page_values(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
    """What every public page's template gets (texts in the negotiated language, the
    sender's name and logo), and the response headers that go with them."""
    settings: Settings = request.app.state.ctx.settings
    t = i18n.for_header(request.headers.get("accept-language"))
    logo = _logo_src(settings, request.scope.get("root_path", ""))
    headers = {"Content-Language": t.lang, "Vary": "Accept-Language"}
    csp = _csp_for(logo)
    if csp is not None:
        headers["Content-Security-Policy"] = csp
    values = {"t": t, "lang": t.lang, "sender": settings.public_sender_name, "logo": logo}
    return values, headers


def _page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    common, headers = page_values(request)
    if "email" in values and values["email"] is not None:
        values["em"] = Markup("<strong>{}</strong>").format(address_html(values["email"]))
    return TEMPLATES.TemplateResponse(
        request, name, common | values, status_code=status, headers=headers
    )


def _bad_link(request: Request, status: int) -> HTMLResponse:
    return _page(request, "link_error.html", status)


@router.get(LOGO_PATH, include_in_schema=False)
def logo(ctx: Context = Depends(get_context)) -> Response:
    """The logo file ``OPTSYNC_PUBLIC_LOGO`` names under the data dir; nothing else is
    ever served from there (the path comes from the setting, never from the request, and
    must resolve inside the data dir, so a symlink cannot lead out of it)."""
    name = ctx.settings.public_logo
    if name is None or name.lower().startswith("https://"):
        return Response(status_code=404)
    root = ctx.settings.data_dir.expanduser().resolve()
    file = (root / name).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        return Response(status_code=404)
    return FileResponse(
        file,
        media_type=LOGO_TYPES[PurePosixPath(name).suffix.lower()],
        headers={"Cache-Control": "public, max-age=3600"},
    )


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
        entry = (
            undoable_entry(session, person_id, now=ctx.clock())
            if row is not None and row.unsubscribed
            else None
        )
    if row is None:
        return _bad_link(request, 404)
    return _page(
        request,
        "unsubscribe.html",
        email=row.email,
        unsubscribed=row.unsubscribed,
        reasons=ctx.settings.reason_choices,
        undo=links.undo_token(person_id, entry) if entry is not None else None,
        minutes=UNDO_MINUTES,
    )


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
    fields = await _form_fields(request)
    one_click = fields.get("List-Unsubscribe") == "One-Click"
    source = Source.ONE_CLICK if one_click else Source.PAGE
    evidence = evidence_of(request)
    problem: ReasonProblem | None = None
    if not one_click:  # a mailbox provider's POST carries no reason
        settings: Settings = request.app.state.ctx.settings
        answer, problem = page_reason(
            fields.get("reason"), fields.get("reason_text"), settings.reason_choices
        )
        evidence |= answer
    group: GroupCommit = request.app.state.group_commit
    outcome = await group.submit(ByIdRequest(person_id, source, f"person:{person_id}", evidence))
    if outcome.email is None:
        return _bad_link(request, 404)
    entry = outcome.ledger_id
    if outcome.changed:
        UNSUBSCRIBES.labels(source.value).inc()
    elif source is Source.PAGE:  # a second click, or the form sent again: the same Undo
        ctx: Context = request.app.state.ctx
        entry = await run_in_threadpool(_undoable, ctx, person_id)
    undo = links.undo_token(person_id, entry) if entry and source is Source.PAGE else None
    return _page(
        request,
        "unsubscribed.html",
        email=outcome.email,
        undo=undo,
        minutes=UNDO_MINUTES,
        reason_problem=problem.value if problem and outcome.changed else None,
        reason_given=outcome.changed and "reason_choice" in evidence,
    )


@router.post(
    "/u/{token}/undo",
    response_class=HTMLResponse,
    summary="Undo an unsubscribe made on the page, within 10 minutes",
    responses=_PAGE_RESPONSES
    | {409: {"description": "Too late, or the state changed since: nothing changed"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _UNDO_FIELDS},
                "multipart/form-data": {"schema": _UNDO_FIELDS},
            },
        }
    },
)
async def undo(request: Request, token: str) -> HTMLResponse:
    links: UnsubscribeLinks = request.app.state.links
    try:
        person_id = links.person_id(token)
    except InvalidLinkToken:
        return _bad_link(request, 400)
    fields = await _form_fields(request)
    try:
        ledger_id = links.undo_of(fields.get("undo", ""), person_id)
    except InvalidUndoToken:
        return _page(request, "undo_refused.html", 400, refusal="bad", email=None)
    ctx: Context = request.app.state.ctx
    evidence = evidence_of(request)
    try:
        result = await run_in_threadpool(
            in_transaction,
            ctx.db,
            lambda session: undo_unsubscribe(
                session, person_id, ledger_id, now=ctx.clock(), evidence=evidence
            ),
        )
    except NotFoundError:
        return _bad_link(request, 404)
    if result.refusal is not None:
        kind = "late" if result.refusal is UndoRefusal.TOO_LATE else "changed"
        return _page(
            request,
            "undo_refused.html",
            409,
            refusal=kind,
            email=result.email,
            minutes=UNDO_MINUTES,
        )
    return _page(
        request,
        "resubscribed.html",
        email=result.email,
        salesforce_had_it=result.salesforce_had_it,
        again=f"{request.scope.get('root_path', '')}/u/{token}",
    )


def _undoable(ctx: Context, person_id: int) -> int | None:
    with ctx.db.transaction() as session:
        return undoable_entry(session, person_id, now=ctx.clock())


async def _form_fields(request: Request) -> dict[str, str]:
    """The first value of each text field of a urlencoded or multipart body; ``{}`` for
    a body that cannot be parsed (it still unsubscribes, as ``page``: the signed URL was
    POSTed to, and refusing would keep emailing someone who asked to stop)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    fields: dict[str, str] = {}
    if content_type == "application/x-www-form-urlencoded":
        body = await request.body()
        try:
            pairs = parse_qsl(
                body.decode("latin-1"), max_num_fields=20, encoding="utf-8", errors="replace"
            )
        except ValueError:
            return {}
        for name, value in pairs:
            fields.setdefault(name, value)
        return fields
    try:
        async with request.form(max_files=0, max_fields=20) as form:
            for name, item in form.multi_items():
                if isinstance(item, str):
                    fields.setdefault(name, item)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return {}
    except Exception:
        return {}
    return fields
