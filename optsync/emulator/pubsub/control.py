"""``/__emulator__/pubsub…`` control endpoints: Change Data Capture set-up and faults.

Select entities as Setup → Integrations → Change Data Capture would, change the bus's
timings for tests, inject gap and overflow events, and drop or stall open streams.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optsync.emulator.errors import SalesforceError
from optsync.emulator.pubsub.bus import EventBus, encode_replay
from optsync.emulator.pubsub.schemas import CHANGE_TYPES
from optsync.emulator.store import parse_record_id

PREFIX = "/__emulator__/pubsub"


def _bus(org: Any) -> EventBus:
    bus = getattr(org, "pubsub", None)
    if bus is None:
        raise SalesforceError(404, "NOT_FOUND", "this emulator serves no Pub/Sub API")
    assert isinstance(bus, EventBus)
    return bus


Handler = Callable[[Request, Any], Awaitable[Response]]


def routes(
    control: Callable[[Handler], Callable[[Request], Awaitable[Response]]],
    body: Callable[[Request], Awaitable[dict[str, Any]]],
) -> list[Route]:
    """The routes, wrapped by the control module's error handling (``control``)."""

    @control
    async def state(request: Request, org: Any) -> Response:
        return JSONResponse(_bus(org).state())

    @control
    async def settings(request: Request, org: Any) -> Response:
        bus = _bus(org)
        bus.set_settings(await body(request))
        return JSONResponse(bus.settings.to_json())

    @control
    async def entities(request: Request, org: Any) -> Response:
        data = await body(request)
        selected = data.get("selected")
        if not isinstance(selected, list) or not all(isinstance(e, str) for e in selected):
            raise ValueError('selected must be a list of entity names, e.g. ["Contact"]')
        bus = _bus(org)
        bus.select(selected)
        return JSONResponse(bus.state())

    @control
    async def gap(request: Request, org: Any) -> Response:
        data = await body(request)
        change = data.get("change_type", "UPDATE")
        if f"GAP_{change}" not in CHANGE_TYPES or change == "OVERFLOW":
            raise ValueError("change_type must be CREATE, UPDATE, DELETE or UNDELETE")
        ids = data.get("record_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ValueError("record_ids must be a non-empty list of record ids")
        parsed = [parse_record_id(i) for i in ids]
        objects = {obj for obj, _ in parsed}
        if len(objects) != 1:
            raise ValueError("the record ids of one gap event belong to one object")
        replay = _bus(org).inject(objects.pop(), f"GAP_{change}", [i for _, i in parsed])
        return JSONResponse({"replay_id": encode_replay(replay).hex()})

    @control
    async def overflow(request: Request, org: Any) -> Response:
        data = await body(request)
        obj = data.get("object")
        if not isinstance(obj, str):
            raise ValueError('object must name the entity, e.g. "Contact"')
        replay = _bus(org).inject(obj, "GAP_OVERFLOW", [])
        return JSONResponse({"replay_id": encode_replay(replay).hex()})

    @control
    async def drop(request: Request, org: Any) -> Response:
        return JSONResponse({"dropped": _bus(org).drop_streams()})

    @control
    async def stall(request: Request, org: Any) -> Response:
        return JSONResponse({"stalled": _bus(org).stall_streams()})

    return [
        Route(PREFIX, state, methods=["GET"]),
        Route(f"{PREFIX}/settings", settings, methods=["PUT"]),
        Route(f"{PREFIX}/entities", entities, methods=["PUT"]),
        Route(f"{PREFIX}/gap", gap, methods=["POST"]),
        Route(f"{PREFIX}/overflow", overflow, methods=["POST"]),
        Route(f"{PREFIX}/streams/drop", drop, methods=["POST"]),
        Route(f"{PREFIX}/streams/stall", stall, methods=["POST"]),
    ]
