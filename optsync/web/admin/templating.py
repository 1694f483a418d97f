"""Rendering admin pages: one Jinja2 environment, the values every page needs, and the
HTML error pages (the API's JSON errors are no use to someone in a browser)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from optsync.web.admin.auth import LoginRequired, PageError, csrf_token, login_url
from optsync.web.admin.labels import PUSH_LABELS, SOURCE_LABELS

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")

Crumb = tuple[str, str | None]
"""A breadcrumb: label and link (``None`` for the current page)."""


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


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.globals["SOURCE_LABELS"] = SOURCE_LABELS
TEMPLATES.env.globals["PUSH_LABELS"] = PUSH_LABELS


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


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A one-time message for the next page (after a redirect), kept in the session."""
    messages = list(request.session.get("flash", []))
    messages.append({"kind": kind, "text": message})
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


def install_page_errors(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageError, _page_error)
