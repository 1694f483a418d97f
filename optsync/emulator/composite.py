"""The Composite resources: ``POST /composite`` and ``POST /composite/batch``.

Both run their subrequests through the *same* route handlers as direct calls (the app's
own router, a synthetic request per subrequest), so field-level security, the SOQL
engine, the write rules and Change Data Capture cannot drift from the direct endpoints.
A subrequest skips only what belongs to the outer call: counting, latency and faults
(``gateway.SUBREQUEST`` in its scope). ``/composite`` counts as one API call whatever
it holds; ``/composite/batch`` counts one per subrequest, as Salesforce documents.

With ``allOrNone`` the composite's subrequests share one store transaction, rolled back
on the first failure. The handlers never truly suspend while it is open (the synthetic
request's body is already there and the subrequest has no latency), so no other
request on the event loop can slip into it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from optsync.emulator.errors import SalesforceError
from optsync.emulator.gateway import SUBREQUEST, api, check_version, json_body, sf_json
from optsync.emulator.org import Org

COMPOSITE_MAX = 25
COMPOSITE_MAX_QUERIES = 5  # queries and sObject Collections among the 25
BATCH_MAX = 25
_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD")
_REFERENCE_ID = re.compile(r"[A-Za-z0-9_]+")
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])+)\}")
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_DATA_URL = re.compile(r"/services/data/v(\d+\.\d)(/.*)?")
# REST routes a subrequest may reach: not Bulk jobs, not the composite resources themselves.
_DISPATCHABLE = re.compile(r"/services/data/v\{version\}/(?!jobs/|composite(?:/batch)?$).+")
_OWN_HEADERS = ("accept", "authorization", "content-type", "content-length")
_KEPT_HEADERS = ("Location", "Last-Modified", "ETag")
HALTED_ROLLED_BACK = (
    "The transaction was rolled back since another operation in the same transaction failed."
)


class _Rollback(Exception):
    """Undo an allOrNone composite after its first failed subrequest."""


def _bad_request(message: str) -> SalesforceError:
    return SalesforceError(400, "JSON_PARSER_ERROR", message)


def _limit_exceeded(message: str) -> Response:
    """The observed answer to too many subrequests: one entry, ``referenceId`` null."""
    body = {
        "compositeResponse": [
            {
                "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
                "httpHeaders": {},
                "httpStatusCode": 400,
                "referenceId": None,
            }
        ]
    }
    return sf_json(body, 400)


def _post_only(method: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are POST"
    )


def _halted(message: str) -> list[dict[str, str]]:
    return [{"errorCode": "PROCESSING_HALTED", "message": message}]


# ------------------------------------------------------------------ dispatch
async def dispatch(
    request: Request, method: str, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """Run one subrequest through the app's routes: (status, kept headers, JSON body)."""
    parts = urlsplit(url)
    path = re.sub(r"/{2,}", "/", parts.path)
    if len(path) > 1:
        path = path.rstrip("/")
    raw = b"" if body is None else json.dumps(body).encode()
    outer = request.scope
    sent_headers: list[tuple[bytes, bytes]] = [
        (k, v) for k, v in outer["headers"] if k.decode().lower() in ("authorization",)
    ]
    for key in ("sforce-call-options",):
        value = request.headers.get(key)
        if value is not None and key not in {k.lower() for k in headers}:
            sent_headers.append((key.encode(), value.encode()))
    for key, value in headers.items():
        if key.lower() not in _OWN_HEADERS:
            sent_headers.append((key.lower().encode(), str(value).encode()))
    sent_headers.append((b"content-type", b"application/json"))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": outer.get("asgi", {"version": "3.0"}),
        "http_version": outer.get("http_version", "1.1"),
        "scheme": outer.get("scheme", "https"),
        "server": outer.get("server"),
        "client": outer.get("client"),
        "root_path": "",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": parts.query.encode(),
        "headers": sent_headers,
        "app": outer["app"],
        "state": outer.get("state", {}),
        SUBREQUEST: True,
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    handler = None
    partial = False
    for route in outer["app"].router.routes:
        if not isinstance(route, Route) or not _DISPATCHABLE.fullmatch(route.path):
            continue
        match, child = route.matches(scope)
        if match is Match.FULL:
            scope.update(child)
            handler = route.endpoint
            break
        if match is Match.PARTIAL:
            partial = True
    if handler is None:
        if partial:
            err = SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed.")
        else:
            err = SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return err.status, {}, err.rest_body()
    response: Response = await handler(Request(scope, receive))
    kept = {k: response.headers[k] for k in _KEPT_HEADERS if k in response.headers}
    content = bytes(response.body) if response.body else b""
    return response.status_code, kept, json.loads(content) if content else None


def _data_url(url: Any, *, batch: bool) -> str:
    """A subrequest URL as a ``/services/data/vXX.X/…`` path (batch may omit the prefix)."""
    if not isinstance(url, str) or not url:
        raise _bad_request("Each subrequest needs a url")
    if batch and re.match(r"v\d+\.\d/", url):
        url = "/services/data/" + url
    elif batch and re.match(r"/v\d+\.\d/", url):
        url = "/services/data" + url
    m = _DATA_URL.fullmatch(urlsplit(url).path)
    if m is None:
        raise _bad_request(f"The url {url} must start with /services/data/vXX.X/")
    check_version(m.group(1))
    return str(url)


def _method(raw: Any) -> str:
    method = raw.upper() if isinstance(raw, str) else ""
    if method not in _METHODS:
        raise _bad_request(f"Invalid HTTP method {raw!r}; use one of {', '.join(_METHODS)}")
    return method


# ------------------------------------------------------------------ references
class _Unresolved(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _lookup(results: dict[str, Any], ref: str, path: str) -> Any:
    if ref not in results:
        raise _Unresolved(
            f"Invalid reference specified. No value for {ref}{path} found in {ref}. "
            f"Provided referenceId ({ref}) isn't valid."
        )
    value = results[ref]
    if value is None:  # the referenced subrequest failed or was not run
        raise _Unresolved(
            f"Invalid reference specified. No value for {ref}{path} found in {ref}. "
            f"The subrequest {ref} did not succeed."
        )
    for step in _PATH_STEP.finditer(path):
        key, index = step.group(1), step.group(2)
        found = False
        if key is not None and isinstance(value, dict) and key in value:
            value, found = value[key], True
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value, found = value[int(index)], True
        if not found:
            raise _Unresolved(
                f"Invalid reference specified. No value for {ref}{path} found in {ref}."
            )
    return value


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``@{ref.path}`` in strings (a whole-string reference keeps its JSON type)."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(results, whole.group(1), whole.group(2))
        return _REFERENCE.sub(lambda m: _text(_lookup(results, m.group(1), m.group(2))), value)
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


# ------------------------------------------------------------------ /composite
def _subrequests(body: Any) -> tuple[bool, list[dict[str, Any]]]:
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise _bad_request("The request body must be an object with a compositeRequest array")
    all_or_none = body.get("allOrNone", False)
    collate = body.get("collateSubrequests", False)
    if not isinstance(all_or_none, bool) or not isinstance(collate, bool):
        raise _bad_request("allOrNone and collateSubrequests must be true or false")
    subs = body["compositeRequest"]
    if not subs:
        raise _bad_request("compositeRequest must hold at least one subrequest")
    seen: set[str] = set()
    out = []
    for sub in subs:
        if not isinstance(sub, dict):
            raise _bad_request("Each subrequest must be an object")
        ref = sub.get("referenceId")
        if not isinstance(ref, str) or not _REFERENCE_ID.fullmatch(ref):
            raise _bad_request(
                f"Invalid referenceId {ref!r}: use letters, numbers and underscores only"
            )
        if ref in seen:
            raise SalesforceError(
                400, "INVALID_INPUT", f"Duplicate ReferenceId provided in the request: {ref}"
            )
        seen.add(ref)
        headers = sub.get("httpHeaders", {})
        if not isinstance(headers, dict):
            raise _bad_request("httpHeaders must be an object of header names and values")
        out.append(
            {
                "method": _method(sub.get("method")),
                "url": _data_url(sub.get("url"), batch=False),
                "referenceId": ref,
                "body": sub.get("body"),
                "httpHeaders": headers,
            }
        )
    return all_or_none, out


def _is_query_or_collection(sub: dict[str, Any]) -> bool:
    path = urlsplit(sub["url"] if isinstance(sub["url"], str) else "").path
    return bool(re.search(r"/(query|queryAll)(/|$)|/composite/sobjects(/|$)", path))


def _failed(status: int, body: Any) -> bool:
    if status >= 400:
        return True
    # an sObject Collections subrequest with a failed record fails an allOrNone composite
    return isinstance(body, list) and any(
        isinstance(r, dict) and r.get("success") is False for r in body
    )


async def _run_composite(
    request: Request, subs: list[dict[str, Any]], all_or_none: bool
) -> list[dict[str, Any]]:
    results: dict[str, Any] = {}  # referenceId → body of a succeeded subrequest, or None
    out: list[dict[str, Any]] = []
    for sub in subs:
        ref = sub["referenceId"]
        try:
            url = _data_url(_resolve(sub["url"], results), batch=False)
            body = _resolve(sub["body"], results)
        except _Unresolved as exc:
            results[ref] = None
            out.append(_entry(400, {}, _halted(exc.message), ref))
            if all_or_none:
                raise _Rollback(out) from None
            continue
        except SalesforceError as exc:
            results[ref] = None
            out.append(_entry(exc.status, {}, exc.rest_body(), ref))
            if all_or_none:
                raise _Rollback(out) from None
            continue
        if all_or_none and isinstance(body, dict) and "/composite/sobjects" in url:
            body = {**body, "allOrNone": True}  # the composite's flag overrides the inner
        status, headers, answer = await dispatch(
            request, sub["method"], url, body, sub["httpHeaders"]
        )
        failed = _failed(status, answer) if all_or_none else status >= 400
        results[ref] = None if failed else answer
        out.append(_entry(status, headers, answer, ref))
        if failed and all_or_none:
            raise _Rollback(out)
    return out


def _entry(status: int, headers: dict[str, str], body: Any, ref: str | None) -> dict[str, Any]:
    return {"body": body, "httpHeaders": headers, "httpStatusCode": status, "referenceId": ref}


@api("composite")
async def composite(request: Request, org: Org, version: str) -> Response:
    """``POST /composite``: up to 25 subrequests (5 queries/collections), one API call.

    ``GET`` lists the composite resources, as Salesforce's ``/composite/`` does."""
    if request.method == "GET":
        base = f"/services/data/v{version}/composite"
        return sf_json({n: f"{base}/{n}" for n in ("batch", "graph", "sobjects", "tree")})
    if request.method != "POST":
        raise _post_only(request.method)
    all_or_none, subs = _subrequests(await json_body(request))
    if len(subs) > COMPOSITE_MAX:
        return _limit_exceeded(
            f"The request can\u2019t contain more than {COMPOSITE_MAX} operations."
        )
    if sum(1 for s in subs if _is_query_or_collection(s)) > COMPOSITE_MAX_QUERIES:
        return _limit_exceeded(
            f"The request can\u2019t contain more than {COMPOSITE_MAX_QUERIES} query or "
            "sObject Collections operations."
        )
    if not all_or_none:
        out = await _run_composite(request, subs, False)
        return sf_json({"compositeResponse": out})
    try:
        with org.store.transaction():
            out = await _run_composite(request, subs, True)
    except _Rollback as exc:
        done: list[dict[str, Any]] = exc.args[0]
        failed_ref = done[-1]["referenceId"]
        out = []
        for sub in subs:
            ref = sub["referenceId"]
            if ref == failed_ref:
                out.append(done[-1])
            else:
                out.append(_entry(400, {}, _halted(HALTED_ROLLED_BACK), ref))
    return sf_json({"compositeResponse": out})


# ------------------------------------------------------------------ /composite/batch
@api("composite/batch")
async def batch(request: Request, org: Org, version: str) -> Response:
    """``POST /composite/batch``: up to 25 independent subrequests, each one API call."""
    if request.method != "POST":
        raise _post_only(request.method)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("batchRequests"), list):
        raise _bad_request("The request body must be an object with a batchRequests array")
    halt = body.get("haltOnError", False)
    if not isinstance(halt, bool):
        raise _bad_request("haltOnError must be true or false")
    subs = body["batchRequests"]
    if not subs:
        raise _bad_request("batchRequests must hold at least one subrequest")
    if len(subs) > BATCH_MAX:
        raise SalesforceError(
            400,
            "INVALID_BATCH_REQUEST",
            f"A batch can contain a maximum of {BATCH_MAX} subrequests",
        )
    checked = []
    for sub in subs:  # a malformed subrequest fails the whole batch before any runs
        if not isinstance(sub, dict):
            raise _bad_request("Each subrequest must be an object")
        checked.append((_method(sub.get("method")), _data_url(sub.get("url"), batch=True), sub))
    results: list[dict[str, Any]] = []
    halted = False
    for n, (method, url, sub) in enumerate(checked):
        if halted:
            results.append(
                {
                    "statusCode": 412,
                    "result": [
                        {
                            "errorCode": "BATCH_PROCESSING_HALTED",
                            "message": "Batch processing halted per request",
                        }
                    ],
                }
            )
            continue
        try:
            if n:  # the batch call itself counted the first subrequest
                org.governor.admit("composite/batch")
        except SalesforceError as exc:
            status, answer = exc.status, exc.rest_body()
        else:
            status, _, answer = await dispatch(request, method, url, sub.get("richInput"), {})
        results.append({"statusCode": status, "result": answer})
        if status >= 400 and halt:
            halted = True
    has_errors = any(r["statusCode"] >= 400 for r in results)
    return sf_json({"hasErrors": has_errors, "results": results})


def routes() -> list[Route]:
    v = "/services/data/v{version}"
    return [
        Route(f"{v}/composite", composite, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route(f"{v}/composite/batch", batch, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
    ]
