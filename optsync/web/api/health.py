"""``GET /api/v1/health/sync``: sync health at a glance, for monitoring (the same
function as the banner on the Unsubscribes area; no Salesforce call)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from optsync.bootstrap import Context
from optsync.services.health import sync_health
from optsync.web.api.auth import Caller, require_token
from optsync.web.deps import get_context
from optsync.web.errors import error_responses

router = APIRouter(tags=["health"])


class RunOut(BaseModel):
    id: int
    status: Literal["succeeded", "failed", "running"]
    finished_at: datetime | None
    error: str | None


class ProblemOut(BaseModel):
    kind: Literal["failed_run", "failed_pushes", "stuck_pushes", "live_pull"]
    text: str
    href: str | None = Field(description="The admin page where to act, if any.")
    count: int | None


class SyncHealthOut(BaseModel):
    status: Literal["ok", "failing"] = Field(description="`failing` when `problems` is not empty.")
    checked_at: datetime
    sync_enabled: bool
    last_success: RunOut | None = Field(description="The last succeeded real (not dry) run.")
    last_run: RunOut | None = Field(description="The last finished real run.")
    running_run_id: int | None
    next_run_at: datetime | None = Field(description="The next scheduled run (UTC).")
    timezone: str = Field(description="The configured zone the schedule is read in.")
    pushes_waiting: int = Field(description="Pushes pending or being sent.")
    oldest_waiting_at: datetime | None
    oldest_waiting_age_s: int | None
    failed_pushes: int = Field(description="Persons whose latest push failed.")
    stuck_pushes: int = Field(description="Pushes waiting longer than `stuck_after_min`.")
    stuck_after_min: int
    live_pull: Literal[
        "off", "waiting", "live", "polling", "catching_up", "reconnecting", "starting"
    ]
    live_pull_detail: list[str]
    problems: list[ProblemOut]


@router.get(
    "/health/sync",
    response_model=SyncHealthOut,
    summary="Sync health: last success, next run, pushes waiting, what is failing",
    responses=error_responses(401),
)
def read_sync_health(
    ctx: Context = Depends(get_context), _caller: Caller = Depends(require_token)
) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        return sync_health(session, ctx.clock()).as_dict()
