"""One error shape for every response: ``{"error": {"code", "message", "field"}}``.

The handlers here replace FastAPI's ``{"detail": ...}`` bodies so that a client written
against the API never meets a second format, whatever failed (routing, validation, auth,
a service's ``UsageError``, a unique-key race).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from optsync.errors import ConfigError, NotFoundError, UsageError

log = logging.getLogger("optsync.web")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
    503: "not_ready",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: e.g. not_found, validation_error.")
    message: str = Field(description="A sentence for people; names the field and the fix.")
    field: str | None = Field(None, description="The input field at fault, when there is one.")


class ErrorOut(BaseModel):
    """Every error response of the API."""

    error: ErrorDetail


class ApiError(Exception):
    """An error a route raises on purpose, with its status and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.field = field
        self.headers = headers


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message}}
    if field is not None:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def error_responses(
    *statuses: int, also: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (plus ``also``)."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorOut, "description": HTTPStatus(status).phrase} for status in statuses
    }
    out.update(also or {})
    return out


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def validation_messages(errors: list[Any]) -> list[str]:
    """One "field: what is wrong" sentence per validation error."""
    return [
        f"{_location(tuple(e.get('loc', ())))}: "
        + str(e.get("msg", "invalid")).removeprefix("Value error, ")
        for e in errors
    ]


def validation_error_json(_request: Request, exc: Exception) -> JSONResponse:
    """The API's 422 for a request FastAPI could not validate (the admin pages answer
    with an HTML page instead: ``optsync.web.admin.templating``)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "The request is not valid.")
    first = errors[0]
    field = _location(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return error_response(422, "body: the request body is not valid JSON.", field="body")
    messages = validation_messages(errors)
    more = f" (and {len(messages) - 3} more)" if len(messages) > 3 else ""
    return error_response(422, "; ".join(messages[:3]) + more + ".", field=field)


# FastAPI's words for a body it could not decode (not UTF-8, say): for the client that
# is the same mistake as malformed JSON, so it gets the same 422.
_UNPARSEABLE_BODY = "There was an error parsing the body"


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (HEAD with GET).

    Starlette's own 405 names only the methods of the *first* route matching the path, so
    ``PUT /api/v1/persons`` said ``Allow: POST`` although ``GET`` is served there too."""
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
        return error_response(422, "body: the request body cannot be decoded.", field="body")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, message, headers=headers or None)


def _api(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.message, code=exc.code, field=exc.field, headers=exc.headers
    )


def _usage(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UsageError)
    if isinstance(exc, NotFoundError):
        return error_response(404, str(exc), field=exc.field)
    if isinstance(exc, ConfigError):  # the server's configuration, not the request
        log.error("configuration problem: %s", exc)
        return error_response(503, str(exc))
    return error_response(422, str(exc), field=exc.field)


def _conflict(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(
        409, "A concurrent request changed the same record; try again.", code="conflict"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_json)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(UsageError, _usage)
    app.add_exception_handler(IntegrityError, _conflict)
