"""What every Salesforce API request goes through before its route runs.

Order matters and mirrors a real org: the API version (retired → 410, unknown → 404),
the session (401 ``INVALID_SESSION_ID`` as a JSON *array*), the daily allocation (403
``REQUEST_LIMIT_EXCEEDED``), counting, latency, injected faults, then the route. Every
answer, errors included, carries ``Sforce-Limit-Info``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from optsync.emulator.errors import SalesforceError
from optsync.emulator.org import Org
from optsync.emulator.pubsub.capture import api_call

Handler = Callable[[Request, Org, str], Awaitable[Response]]
log = logging.getLogger("optsync.emulator")

SUBREQUEST = "emulator.subrequest"
"""Scope key of a Composite subrequest: counted, delayed and faulted with its outer call."""

FIRST_VERSION = 31
LATEST_VERSION = 66
_SEASONS = ("Winter", "Spring", "Summer")


def version_label(major: int) -> str:
    """Release name of an API version: v59.0 is Winter '24, v60.0 Spring '24, …"""
    k = major - 59
    return f"{_SEASONS[k % 3]} '{24 + k // 3:02d}"


def versions() -> list[dict[str, str]]:
    return [
        {"label": version_label(v), "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
        for v in range(FIRST_VERSION, LATEST_VERSION + 1)
    ]


def check_version(raw: str) -> str:
    m = re.fullmatch(r"(\d+)\.0", raw)
    if not m:
        raise not_found()
    major = int(m.group(1))
    if major < FIRST_VERSION:
        raise SalesforceError(410, "GONE", "The requested resource no longer exists")
    if major > LATEST_VERSION:
        raise not_found()
    return raw


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def sf_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (Salesforce never pretty-prints over the wire)."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json;charset=UTF-8",
        headers=headers,
    )


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character: was expecting a JSON value: {exc}",
        ) from None


def api(
    endpoint: str | Callable[[Request], str],
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a route with version, session, allocation, latency and fault handling.

    ``endpoint`` names the call in the counters (e.g. ``"composite/sobjects"``), or is a
    function of the request for names that include the object type.
    """

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            org: Org = request.app.state.org
            try:
                version = check_version(request.path_params.get("version", "59.0"))
                token = bearer(request)
                if token is None or not org.authority.valid(token):
                    raise SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")
                if request.scope.get(SUBREQUEST):  # inside /composite: the outer call counts
                    response = await handler(request, org, version)
                else:
                    name = endpoint if isinstance(endpoint, str) else endpoint(request)
                    org.governor.admit(name)
                    await org.governor.delay()
                    org.governor.maybe_fault()
                    header = request.headers.get("sforce-call-options")
                    with api_call(request.url.path, version, header):  # who writes, for CDC
                        response = await handler(request, org, version)
            except SalesforceError as exc:
                response = sf_json(exc.rest_body(), exc.status)
                if exc.status == 503:
                    response.headers["Retry-After"] = "1"
            except ClientDisconnect:  # the client died mid-request (a killed worker)
                log.info("client went away during %s", request.url.path)
                return Response(status_code=499)
            except Exception:  # an emulator bug must still answer like Salesforce does
                log.exception("emulator route %s failed", request.url.path)
                response = sf_json(
                    [
                        {
                            "message": "An unexpected error occurred. Please include "
                            "this ErrorId if you contact support",
                            "errorCode": "UNKNOWN_EXCEPTION",
                        }
                    ],
                    500,
                )
            response.headers["Sforce-Limit-Info"] = org.governor.limit_info()
            return response

        route.__name__ = handler.__name__
        route.__doc__ = handler.__doc__
        return route

    return decorate


def error_response(exc: SalesforceError) -> Response:
    return JSONResponse(exc.rest_body(), status_code=exc.status)
