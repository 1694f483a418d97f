"""Rendering admin pages: one Jinja2 environment, the values every page needs, and the
HTML error pages (the API's JSON errors are no use to someone in a browser)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from optsync.salesforce.config import SETTING_OF
from optsync.settings import REASON_CHOICES
from optsync.web.address_markup import address_html as _address
from optsync.web.admin.auth import LoginRequired, PageError, csrf_token, login_url
from optsync.web.admin.health_banner import age_text
from optsync.web.admin.labels import (
    LIVE_PULL_STATES,
    OBJECT_LABELS,
    PROBLEM_LABELS,
    PUSH_LABELS,
    RUN_FILTER_LABELS,
    SOURCE_LABELS,
)
from optsync.web.api.types import MAX_ID
from optsync.web.errors import validation_error_json, validation_messages
from optsync.web.i18n import catalogue

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
_SETTING_NAMES = sorted(SETTING_OF.values(), key=len, reverse=True)

Crumb = tuple[str, str | None]
"""A breadcrumb: label and link (``None`` for the current page)."""

RecordId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
"""A person or run id in an admin URL: inside the 64-bit range both databases use, so an
absurd id is the 404 page, never a database error."""
PageNumber = Annotated[int, Query(ge=1, le=MAX_ID)]
"""``?page=`` of a listing (a number past the last page shows the last page)."""
PAGE_PATHS = ("/settings", "/login", "/logout")
"""Where requests come from a browser: a malformed request there gets an HTML page."""


def _when(value: datetime | str | None, tz: str = "UTC") -> str:
    """A time in the admin's zone, with the zone's abbreviation."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M %Z")


_CODE = re.compile(r"`([^`]+)`")


def _fix_text(text: str | None) -> Markup:
    """A fix or detail sentence: `backticked` names become <code>, the rest is escaped."""
    parts = _CODE.split(text or "")
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else _plain(p) for i, p in enumerate(parts)
    )


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _plain(text: str) -> Markup:
    """Escaped text with every address in it kept whole (``_address``)."""
    out, last = [], 0
    for m in _EMAIL.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(_address(m.group(0)))
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _number(value: int | float | None) -> str:
    """A count with thousands separators: 1,000,000."""
    if value is None:
        return "—"
    return f"{value:,}"


def _seconds(value: float | None) -> str:
    """A phase's time: "0.04 s" rather than "0.0 s", whole seconds past a minute."""
    if value is None:
        return "—"
    if value < 0.01:
        return "under 0.01 s"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:,.0f} s"


FIELD_LABELS = {
    "email": "Email",
    "reason": "Reason",
    "auth": "Sign-in method",
    "login_url": "Login URL",
    "client_id": "Consumer key",
    "client_secret": "Consumer secret",
    "username": "Username",
    "password": "Password",
    "private_key": "Private key",
    "api_version": "API version",
    "ca_bundle": "CA bundle path",
    "schedule": "Schedule",
    "timezone": "Time zone",
    "field": "Field",
    "sales_opt_out_field": "Sales Opt Out API name",
    "live_pull": "Live pull",
    "poll_interval_s": "Poll every",
    "source": "Source",
    "state": "Push state",
    "code": "Error code",
    "object": "Salesforce object",
    "since": "From",
    "until": "To",
    "q": "Search",
    "sort": "Sort",
    "size": "Per page",
    "cursor": "Page link",
    **RUN_FILTER_LABELS,
    "salesforce_id": "Salesforce id",
    "link_rule": "Link persons to",
    "suppress_unknown": "Suppress unknown addresses",
}
"""What the pages call a field in an error ("Email: …"), never the setting's name."""
_PREFIX = re.compile(r"^(?:[a-z](?:[a-z_.]*[a-z])?): ")


def field_message(field: str | None, message: str, *, with_label: bool = True) -> str:
    """One style for every error on the pages: "Email: An email address must have an
    @-sign." — the page's word for the field, then the sentence; the setting or
    parameter name the services put first ("email: ", "sf.client_secret: ") goes.
    ``with_label=False`` for an error shown under its own field."""
    text = _PREFIX.sub("", message.strip(), count=1)
    for setting in _SETTING_NAMES:
        if text.startswith(setting + " "):
            text = "This" + text[len(setting) :]
            break
    text = text[:1].upper() + text[1:]
    if not with_label or not field:
        return text
    return f"{FIELD_LABELS.get(field, field.replace('_', ' ').capitalize())}: {text}"


def _who(actor: str | None, person: Any = None) -> str:
    """Who made a change, as a person reads it: an address, never "person:1"."""
    kind, _, rest = (actor or "").partition(":")
    if kind == "user" and rest:
        return rest
    if kind == "person" and person is not None and rest == str(getattr(person, "id", "")):
        return f"{person.email} (themself)"
    if kind == "person":
        return "the person themself"
    return actor or "—"


TEMPLATES.env.filters["who"] = _who
TEMPLATES.env.filters["address"] = _address
TEMPLATES.env.filters["plain"] = _plain


def _when_html(value: datetime | str | None, tz: str = "UTC") -> Markup:
    """``_when`` on a page: one line, never broken at its hyphens."""
    return Markup('<span class="nowrap">{}</span>').format(_when(value, tz))


TEMPLATES.env.filters["when"] = _when_html
TEMPLATES.env.filters["fixtext"] = _fix_text
TEMPLATES.env.filters["number"] = _number
TEMPLATES.env.filters["seconds"] = _seconds
TEMPLATES.env.globals["SOURCE_LABELS"] = SOURCE_LABELS
TEMPLATES.env.globals["PUSH_LABELS"] = PUSH_LABELS
TEMPLATES.env.globals["RUN_FILTER_LABELS"] = RUN_FILTER_LABELS
# the recipient's answer on the public page, in the admin pages' English
TEMPLATES.env.globals["REASON_LABELS"] = {
    r: catalogue("en").texts[f"reason.{r}"] for r in REASON_CHOICES
}
TEMPLATES.env.globals["LIVE_PULL_STATES"] = LIVE_PULL_STATES
TEMPLATES.env.globals["PROBLEM_LABELS"] = PROBLEM_LABELS
TEMPLATES.env.globals["age_text"] = age_text
TEMPLATES.env.globals["EVIDENCE_LABELS"] = {
    "ip": "IP address",
    "user_agent": "Browser",
    "sync_run": "Sync run",
    "field": "Salesforce field",
    "record_id": "Salesforce record",
}
TEMPLATES.env.globals["OBJECT_LABELS"] = OBJECT_LABELS


def render(
    request: Request,
    name: str,
    *,
    title: str,
    crumbs: list[Crumb],
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    context = {
        "flashes": request.session.pop("flash", []) if "flash" in request.session else [],
        "page_title": title,
        "crumbs": crumbs,
        "user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request),
        **values,
    }
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status, headers=headers)


_ADDRESS = re.compile(r"[^\s@]*@[^\s@]*[^\s@.,;:!?)\]]")
"""Anything shaped like an address (up to trailing punctuation)."""


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A one-time message for the next page (after a redirect), kept in the session.

    The session cookie is signed, not encrypted, so a notice never carries an address:
    callers name no one (the page redirected to shows the person), and anything shaped
    like an address that still reaches here (a Salesforce username in an error, say) is
    replaced by ``[address]``."""
    messages = list(request.session.get("flash", []))
    messages.append({"kind": kind, "text": _ADDRESS.sub("[address]", message)})
    request.session["flash"] = messages[-5:]


def redirect(url: str) -> RedirectResponse:
    """After a POST: 303, so a reload does not send the form again."""
    return RedirectResponse(url, status_code=303)


def _login_required(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(login_url(exc.next_path), status_code=303)


def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return render(
        request,
        "admin/error.html",
        title=exc.title,
        crumbs=[("Settings", "/settings"), (exc.title, None)],
        status=exc.status,
        headers=exc.headers,
        message=exc.message,
    )


def _invalid_request(request: Request, exc: Exception) -> Response:
    """A malformed admin address as a page: a bad id in the path names nothing (404), a
    bad query value is a 422 page naming it. The API keeps its JSON errors."""
    assert isinstance(exc, RequestValidationError)
    path = request.url.path
    if not any(path == p or path.startswith(p + "/") for p in PAGE_PATHS):
        return validation_error_json(request, exc)
    errors = list(exc.errors())
    if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        status, title, message = 404, "Page not found", "There is no page at this address."
    else:
        status, title = 422, "Not a valid request"
        message = "; ".join(validation_messages(errors)[:3]) + "."
    return render(
        request,
        "admin/error.html",
        title=title,
        crumbs=[("Settings", "/settings"), (title, None)],
        status=status,
        message=message,
    )


def install_page_errors(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageError, _page_error)
