"""Protections every request passes through, as one plain ASGI middleware (cheap enough
for the one-click hot path):

* a request body limit (413): checked against ``Content-Length`` up front and counted
  while streaming, so a chunked upload cannot exceed it either;
* security headers: no framing (clickjacking on the unsubscribe button), no sniffing, no
  ``Referer`` (unsubscribe URLs carry a credential), no caching of personal pages, a
  CSP under which no script runs, cross-origin isolation, HSTS on https requests;
* a last-resort handler: an unexpected failure answers ``500`` in the JSON error shape and
  is logged without its message, which may quote SQL parameters such as addresses.
"""

from __future__ import annotations

import json
import logging

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("optsync.web")

MAX_BODY_BYTES = 5 * 1024 * 1024

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # No script runs anywhere (default-src 'none' and no script-src); styles and images
    # only from this origin; forms post only here; no framing, no <base>, no plugins.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    # another origin's window gets no handle on ours, nor may it embed our responses
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": (
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
    ),
}
HSTS = "max-age=31536000"
"""Sent only on https requests (a browser ignores it over http, and sending it from a
plain-http development server would only confuse)."""


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; FastAPI passes HTTPExceptions through
    its body parsing, so the error handlers turn it into the JSON 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


def _json_error(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestGuards:
    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            for message in _json_error(
                413,
                "payload_too_large",
                f"The request body is larger than {self.max_body_bytes} bytes.",
            ):
                await send_with_headers(message)
            return

        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except Exception as exc:
            if started:
                raise
            log.error(
                "unhandled %s in %s %s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("route").path if scope.get("route") else "(no route)",  # type: ignore[union-attr]
            )
            log.debug("traceback", exc_info=exc)
            status, code, text = (
                (413, "payload_too_large", str(exc.detail))
                if isinstance(exc, BodyTooLarge)
                else (500, "internal_error", "Something went wrong on our side; try again.")
            )
            for part in _json_error(status, code, text):
                await send_with_headers(part)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
