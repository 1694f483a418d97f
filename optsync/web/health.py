"""``/healthz`` (the process answers), ``/readyz`` (the database is reachable and at this
version's schema) and ``/metrics`` (Prometheus text; needs a token, like the API, because
queue depths and failure counts describe the business)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from optsync.bootstrap import Context
from optsync.errors import OptsyncError
from optsync.metrics import exposition
from optsync.store.outbox import queue_stats
from optsync.web.api.auth import Caller, require_token
from optsync.web.deps import get_context
from optsync.web.errors import ApiError, error_responses

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: Literal["ok", "ready"]


@router.get("/healthz", response_model=Status, summary="Liveness: the process answers")
def healthz() -> Status:
    return Status(status="ok")


@router.get(
    "/readyz",
    response_model=Status,
    summary="Readiness: the database is reachable and migrated",
    responses=error_responses(503),
)
def readyz(request: Request, ctx: Context = Depends(get_context)) -> Status:
    head: str | None = request.app.state.schema_head
    try:
        current = ctx.db.current_revision()
    except OptsyncError:
        raise ApiError(503, "The database is unreachable.", code="not_ready") from None
    if current != head:
        raise ApiError(
            503,
            "The database is not at this version's schema; run `optsync db upgrade`.",
            code="not_ready",
        )
    return Status(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics (token required)",
    response_class=Response,
    responses=error_responses(
        401,
        also={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text exposition format",
            }
        },
    ),
)
def metrics(
    ctx: Context = Depends(get_context), _caller: Caller = Depends(require_token)
) -> Response:
    # The outbox lives in the database, so any process reports it, read at scrape time;
    # counters come from this process, or from every web process under --workers N.
    with ctx.db.transaction() as session:
        stats = queue_stats(session, ctx.clock())
    return Response(exposition(stats), media_type=CONTENT_TYPE_LATEST)
