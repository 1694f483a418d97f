"""The emulator's ASGI application: OAuth, REST, Bulk 2.0 and control routes.

Plain Starlette rather than FastAPI: the emulator must answer with Salesforce's wire
shapes (error *arrays*, form-encoded OAuth) rather than OpenAPI models, and the thinner
stack keeps it far from being the bottleneck of optsync's benchmarks.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from optsync.emulator import bulk, composite, control, identity, rest
from optsync.emulator.auth import TokenError
from optsync.emulator.gateway import sf_json
from optsync.emulator.org import Org

MAX_URI_BYTES = 16_384  # Salesforce: URI, and URI plus headers, at most 16,384 bytes


def _oversized(scope: Scope) -> Response | None:
    """Salesforce's request-size limits: a URI over 16,384 bytes answers ``414 URI Too
    Long``, URI plus headers over it ``431 Request Header Fields Too Large``."""
    uri = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if scope["query_string"]:
        uri += 1
    if uri > MAX_URI_BYTES:
        return Response("URI Too Long", status_code=414, media_type="text/plain")
    headers = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
    if uri + headers > MAX_URI_BYTES:
        return Response("Request Header Fields Too Large", status_code=431, media_type="text/plain")
    return None


class _NormalizePath:
    """Salesforce serves ``/limits`` and ``/limits/`` alike (simple-salesforce uses both),
    and ``//services/…`` like ``/services/…`` (the Salesforce CLI stores the instance URL
    with a trailing slash and appends paths that start with one)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            too_big = _oversized(scope)
            if too_big is not None:
                await too_big(scope, receive, send)
                return
            path: str = scope["path"]
            clean = re.sub(r"/{2,}", "/", path)
            if len(clean) > 1 and clean.endswith("/"):
                clean = clean.rstrip("/") or "/"
            if clean != path:
                scope = dict(scope)
                scope["path"] = clean
                scope["raw_path"] = clean.encode()
        await self.app(scope, receive, send)


async def token(request: Request) -> Response:
    """``POST /services/oauth2/token`` (form-encoded; not counted as an API request)."""
    org: Org = request.app.state.org
    raw = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(raw, keep_blank_values=True))
    for key, value in request.query_params.items():
        form.setdefault(key, value)
    try:
        body = org.authority.token(
            form,
            request.headers.get("authorization"),
            instance_url=org.instance_url,
            login_url=org.login_url,
        )
    except TokenError as exc:
        return sf_json(exc.body(), exc.status)
    return sf_json(body)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        body: Any = [
            {
                "errorCode": "METHOD_NOT_ALLOWED",
                "message": f"HTTP Method '{request.method}' not allowed.",
            }
        ]
    elif exc.status_code == 404:
        body = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    else:
        body = [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc.detail)}]
    headers = None
    if request.url.path.startswith("/services/data/v"):
        org: Org = request.app.state.org
        headers = {"Sforce-Limit-Info": org.governor.limit_info()}
    return sf_json(body, exc.status_code, headers=headers)


def create_app(org: Org) -> ASGIApp:
    """Build the ASGI app serving ``org``."""
    app = Starlette(
        routes=[
            Route("/services/oauth2/token", token, methods=["POST"]),
            *identity.routes(),
            *rest.routes(),
            *composite.routes(),
            *bulk.routes(),
            *control.routes(),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.org = org
    return _NormalizePath(app)
