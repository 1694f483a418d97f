"""``/api/v1/sync/runs`` and ``/api/v1/salesforce/check``: start, list and read sync runs,
and run the setup checks, for scripts and monitoring."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from optsync.bootstrap import Context
from optsync.errors import NotFoundError
from optsync.services import sync_run
from optsync.services.salesforce_setup import setup_checks
from optsync.services.sync_launcher import SyncLauncher
from optsync.web.api.auth import Caller, require_admin, require_token
from optsync.web.api.types import MAX_ID, StrictIn
from optsync.web.deps import get_context
from optsync.web.errors import ApiError, error_responses

router = APIRouter(tags=["sync"])


class FailureOut(BaseModel):
    person_id: int | None
    salesforce_id: str | None
    code: str
    message: str
    fix: str | None


class ReoptedOut(BaseModel):
    person_id: int
    email: str


class SyncRunReport(BaseModel):
    """The run report (interfaces.md); more keys may appear, these keep their meaning."""

    model_config = ConfigDict(extra="allow")

    id: int
    trigger: Literal["schedule", "manual"]
    dry_run: bool
    status: Literal["running", "succeeded", "failed"]
    error: str | None = Field(description="Why a failed run failed, with the fix.")
    field: str | None = Field(description="The Salesforce API name synced.")
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    remote_opted_out: int | None = Field(description="Records with the field set.")
    local_unsubscribed: int | None
    pulled: int | None = Field(description="New local unsubscribes from Salesforce.")
    pushed: int | None = Field(description="Records set in Salesforce.")
    failed: dict[str, int] = Field(description="Salesforce error code -> count.")
    failures: list[FailureOut]
    not_linked: int | None = Field(description="Unsubscribed persons without a Salesforce id.")
    reopted_out: list[ReoptedOut]
    api_calls: int | None
    records_set: dict[str, int] | None = Field(
        None, description="Records set in Salesforce per object (Contact, Lead)."
    )
    addresses_fanned_out: int | None = Field(
        None, description="Unsubscribed addresses with a record set besides the linked one."
    )
    duplicates: int | None = Field(
        None, description="Addresses carried by more than one Salesforce record."
    )
    auto_linked: int | None = Field(
        None, description="Persons linked to a record by the linking rule in this run."
    )
    not_in_salesforce: int | None = Field(
        None, description="Unsubscribed persons whose address no Salesforce record carries."
    )


class SyncRunsOut(BaseModel):
    runs: list[SyncRunReport]


class StartRunIn(StrictIn):
    dry_run: bool = Field(False, description="Compute the report; change nothing anywhere.")
    full: bool = Field(
        False,
        description="Re-read every Contact and Lead into the record mirror (as after a "
        "Change Data Capture gap), instead of only the records changed since the last run.",
    )


class StartedOut(BaseModel):
    id: int
    status: Literal["running"]
    url: str = Field(description="Where to read the report.")


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str
    fix: str | None


class ChecksOut(BaseModel):
    ok: bool
    checks: list[CheckOut]


def launcher_of(request: Request) -> SyncLauncher:
    launcher: SyncLauncher = request.app.state.sync_launcher
    return launcher


@router.post(
    "/sync/runs",
    status_code=202,
    response_model=StartedOut,
    summary="Start the bidirectional sync now (admin token); 409 while one runs",
    responses=error_responses(401, 403, 409, 413, 422),
)
async def start_sync_run(
    request: Request,
    body: StartRunIn | None = None,
    _caller: Caller = Depends(require_admin),
) -> JSONResponse:
    dry_run = bool(body and body.dry_run)
    full = bool(body and body.full)
    try:
        run_id = await run_in_threadpool(
            lambda: launcher_of(request).start(dry_run=dry_run, full=full)
        )
    except sync_run.RunInProgress as exc:
        raise ApiError(409, str(exc), code="run_in_progress") from None
    out = StartedOut(id=run_id, status="running", url=f"/api/v1/sync/runs/{run_id}")
    return JSONResponse(out.model_dump(), status_code=202)


@router.get(
    "/sync/runs",
    response_model=SyncRunsOut,
    summary="Past sync runs, newest first",
    responses=error_responses(401, 422),
)
def list_sync_runs(
    limit: int = Query(20, ge=1, le=200),
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> dict[str, Any]:
    return {"runs": sync_run.history(ctx.db, limit)}


@router.get(
    "/sync/runs/{run_id}",
    response_model=SyncRunReport,
    summary="One sync run and its report",
    responses=error_responses(401, 404, 422),
)
def read_sync_run(
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> dict[str, Any]:
    try:
        return sync_run.get_report(ctx.db, run_id)
    except NotFoundError as exc:
        raise ApiError(404, str(exc), field="run_id") from None


@router.get(
    "/salesforce/check",
    response_model=ChecksOut,
    summary="The setup checks, live against Salesforce, each with its fix",
    responses=error_responses(401),
)
def salesforce_check(
    ctx: Context = Depends(get_context), _caller: Caller = Depends(require_token)
) -> ChecksOut:
    checks = setup_checks(ctx)  # page profile; no transaction open during the calls
    return ChecksOut(
        ok=all(c.ok for c in checks),
        checks=[CheckOut(name=c.name, ok=c.ok, detail=c.detail, fix=c.fix) for c in checks],
    )
