"""What a request gets while the database cannot be reached: ``503`` with ``Retry-After``.

Without this, a refused connection, a pool that stays exhausted or SQLite's lock wait
running out would surface as a bare ``500 Internal Server Error``. A ``503`` tells API
clients and mailbox providers that the request may be repeated, and tells a person on the
unsubscribe page that nothing was recorded yet, so they try again instead of assuming it
worked. Nothing is half-written: each request's transaction was rolled back.

The log line names the driver's error class and its first line only: SQLAlchemy's own
message carries the statement's parameters, which may include addresses.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from optsync.web.errors import error_response
from optsync.web.public import TEMPLATES, page_values

log = logging.getLogger("optsync.web")

RETRY_AFTER_SECONDS = 30

_JSON_PREFIXES = ("/api/", "/metrics", "/healthz", "/readyz", "/openapi.json")


def database_unavailable(request: Request, exc: Exception) -> HTMLResponse | JSONResponse:
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [""])[0][:200]
    log.error("database unavailable (%s: %s)", type(cause).__name__, first_line)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith(_JSON_PREFIXES):
        return error_response(
            503, "The database is unavailable; try again shortly.", headers=headers
        )
    values, page_headers = page_values(request)  # in the recipient's language
    return TEMPLATES.TemplateResponse(
        request, "unavailable.html", values, status_code=503, headers=page_headers | headers
    )
