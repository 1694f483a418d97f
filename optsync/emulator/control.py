"""``/__emulator__/`` control endpoints: what tests, demos and benchmarks drive directly.

These are not Salesforce APIs: they need no session, are not counted against the daily
allocation and never see latency or faults, so a test can arrange an org (seed, convert,
hide a field, expire sessions) without disturbing what it then measures. Errors use
optsync's own shape ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optsync.emulator.errors import SalesforceError
from optsync.emulator.org import Org
from optsync.emulator.pubsub import control as pubsub_control
from optsync.emulator.pubsub.capture import capture_paused
from optsync.emulator.store import SeedResult

PREFIX = "/__emulator__"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise SalesforceError(400, "BAD_JSON", "The body must be a JSON object") from None
    if not isinstance(data, dict):
        raise SalesforceError(400, "BAD_JSON", "The body must be a JSON object")
    return data


def control(
    handler: Callable[[Request, Org], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Turn ``SalesforceError``/``ValueError``/``KeyError`` into the control error shape."""

    async def route(request: Request) -> Response:
        org: Org = request.app.state.org
        try:
            return await handler(request, org)
        except SalesforceError as exc:
            return _error(exc.status, exc.code, exc.message)
        except KeyError as exc:
            return _error(404, "NOT_FOUND", str(exc.args[0]) if exc.args else "not found")
        except ValueError as exc:
            return _error(400, "INVALID_INPUT", str(exc))

    route.__name__ = handler.__name__
    return route


@control
async def reset(request: Request, org: Org) -> Response:
    await run_in_threadpool(org.reset)
    return JSONResponse({"reset": True})


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number of at least 0")
    return value


def _fraction(data: dict[str, Any], key: str) -> float:
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{key} must be a number between 0 and 1")
    return float(value)


@control
async def seed(request: Request, org: Org) -> Response:
    """Insert generated Contacts, Leads and person accounts, some sharing addresses;
    ids are listed only up to 10,000 records."""
    data = await _body(request)
    contacts, leads = _count(data, "contacts"), _count(data, "leads")
    persons = _count(data, "person_accounts")
    opted, sales, duplicates = (
        _fraction(data, "opted_out_fraction"),
        _fraction(data, "sales_opted_out_fraction"),
        _fraction(data, "duplicate_fraction"),
    )

    def run() -> SeedResult:
        return org.store.seed(
            contacts,
            leads,
            opted,
            sales,
            person_accounts=persons,
            duplicate_fraction=duplicates,
        )

    with capture_paused():  # seeded records stand for data already there: no CDC events
        result = await run_in_threadpool(run)
    body: dict[str, Any] = {
        "contacts": contacts,
        "leads": leads,
        "person_accounts": persons,
        "duplicates": result.duplicates,
    }
    if result.contact_ids is not None:
        body["contact_ids"] = result.contact_ids
        body["lead_ids"] = result.lead_ids
        body["person_account_ids"] = result.person_account_ids
        body["duplicate_ids"] = [
            {"id": dup, "duplicate_of": orig} for dup, orig in result.duplicate_ids or []
        ]
    return JSONResponse(body)


@control
async def settings(request: Request, org: Org) -> Response:
    if request.method == "PUT":
        org.governor.settings = org.governor.settings.updated(await _body(request))
    return JSONResponse(org.governor.settings.to_json())


@control
async def expire_sessions(request: Request, org: Org) -> Response:
    return JSONResponse({"expired": org.authority.expire_all()})


def _full_record(org: Org, record_id: str) -> dict[str, Any]:
    obj, row = org.store.get(None, record_id, include_deleted=True)
    return {"attributes": {"type": obj}, **row}


@control
async def record(request: Request, org: Org) -> Response:
    """Every field whatever FLS (GET); edit (PATCH) or delete (DELETE) as an admin user."""
    record_id = request.path_params["record_id"]
    if request.method == "PATCH":
        data = await _body(request)
        data.pop("attributes", None)
        org.store.update(None, record_id, data, enforce_fls=False, as_admin=True)
    elif request.method == "DELETE":
        org.store.delete(None, record_id)
    return JSONResponse(_full_record(org, record_id))


@control
async def convert(request: Request, org: Org) -> Response:
    data = await _body(request)
    contact_id = data.get("contact_id")
    if contact_id is not None and not isinstance(contact_id, str):
        raise ValueError("contact_id must be a Contact id")
    return JSONResponse(
        {"contact_id": org.store.convert(request.path_params["record_id"], contact_id)}
    )


@control
async def merge(request: Request, org: Org) -> Response:
    """Merge this record into ``{"master_id"}``: it is deleted with ``MasterRecordId`` set."""
    data = await _body(request)
    master = data.get("master_id")
    if not isinstance(master, str):
        raise ValueError("master_id must be the id of the surviving record")
    obj, _ = org.store.get(None, master)
    org.store.merge(obj, master, request.path_params["record_id"])
    return JSONResponse(_full_record(org, request.path_params["record_id"]))


@control
async def field_security(request: Request, org: Org) -> Response:
    data = await _body(request)
    visible, updateable = data.get("visible", True), data.get("updateable", True)
    if not isinstance(visible, bool) or not isinstance(updateable, bool):
        raise ValueError("visible and updateable must be true or false")
    obj, name = request.path_params["sobject"], request.path_params["field"]
    org.store.set_field_access(obj, name, visible=visible, updateable=updateable)
    return JSONResponse(
        {"object": obj, "field": name, "visible": visible, "updateable": updateable}
    )


@control
async def org_options(request: Request, org: Org) -> Response:
    """``GET``/``PUT /__emulator__/org``: org features (``{"person_accounts": bool}``)."""
    if request.method == "PUT":
        data = await _body(request)
        unknown = sorted(set(data) - {"person_accounts"})
        if unknown:
            raise ValueError(f"unknown org option {unknown[0]!r}; use person_accounts")
        if "person_accounts" in data:
            if not isinstance(data["person_accounts"], bool):
                raise ValueError("person_accounts must be true or false")
            org.store.set_person_accounts(data["person_accounts"])
    return JSONResponse({"person_accounts": org.store.person_accounts})


@control
async def counters(request: Request, org: Org) -> Response:
    return JSONResponse(org.governor.counters())


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/seed", seed, methods=["POST"]),
        Route(f"{PREFIX}/settings", settings, methods=["GET", "PUT"]),
        Route(f"{PREFIX}/sessions/expire", expire_sessions, methods=["POST"]),
        Route(f"{PREFIX}/records/{{record_id}}", record, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{PREFIX}/records/{{record_id}}/convert", convert, methods=["POST"]),
        Route(f"{PREFIX}/records/{{record_id}}/merge", merge, methods=["POST"]),
        Route(f"{PREFIX}/fields/{{sobject}}/{{field}}", field_security, methods=["PUT"]),
        Route(f"{PREFIX}/counters", counters, methods=["GET"]),
        Route(f"{PREFIX}/org", org_options, methods=["GET", "PUT"]),
        *pubsub_control.routes(control, _body),
    ]
