"""``/api/v1/pushes/retry``: send failed pushes again once their fix is in place (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool, StringConstraints

from optsync.bootstrap import Context
from optsync.services.push_retry import CODE_MAX, retry_pushes
from optsync.services.transactions import in_transaction
from optsync.web.api.auth import Caller, require_admin
from optsync.web.api.types import EmailText, StrictIn
from optsync.web.deps import get_context
from optsync.web.errors import error_responses

router = APIRouter(tags=["pushes"])

ErrorCode = Annotated[
    str, StringConstraints(min_length=1, max_length=CODE_MAX, pattern=r"^[A-Za-z0-9_]+$")
]


class RetryIn(StrictIn):
    """Which failed pushes to send again; the filters combine, at least one is needed."""

    codes: list[ErrorCode] = Field(
        default_factory=list, max_length=100, description="Salesforce error codes."
    )
    emails: list[EmailText] = Field(
        default_factory=list, max_length=1000, description="Addresses of the persons."
    )
    all_failed: StrictBool = Field(False, description="Every failed push.")


class RetryOut(BaseModel):
    reopened: int = Field(description="Failed pushes queued again (due now).")
    still_failed: int = Field(description="Persons whose latest push is still failed.")


@router.post(
    "/pushes/retry",
    response_model=RetryOut,
    summary="Queue failed pushes again after their fix (admin token)",
    responses=error_responses(401, 403, 422),
)
def retry(
    body: RetryIn,
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_admin),
) -> RetryOut:
    result = in_transaction(
        ctx.db,
        lambda session: retry_pushes(
            session,
            now=ctx.clock(),
            codes=body.codes,
            emails=body.emails,
            all_failed=body.all_failed,
        ),
    )
    return RetryOut(reopened=result.reopened, still_failed=result.still_failed)
