"""``/api/v1/suppression/check``: which of these addresses must not be emailed."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from optsync.bootstrap import Context
from optsync.services import suppression
from optsync.web.api.auth import Caller, require_token
from optsync.web.api.types import MAX_BATCH, EmailText, StrictIn
from optsync.web.deps import get_context
from optsync.web.errors import error_responses

router = APIRouter(tags=["suppression"])


class CheckIn(StrictIn):
    emails: list[EmailText] = Field(max_length=MAX_BATCH, description="Up to 10,000 addresses.")


class InvalidOut(BaseModel):
    index: int = Field(description="Position in `emails` (from 0).")
    email: str = Field(description="The input as given.")
    message: str


class CheckOut(BaseModel):
    suppressed: list[str] = Field(
        description="The inputs, as given and in input order, whose person is unsubscribed."
    )
    invalid: list[InvalidOut] = Field(description="Inputs that are not email addresses.")


@router.post(
    "/suppression/check",
    response_model=CheckOut,
    summary="Which of up to 10,000 addresses are unsubscribed",
    responses=error_responses(401, 413, 422),
)
def check(
    body: CheckIn,
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> CheckOut:
    with ctx.db.transaction() as session:
        result = suppression.check(session, body.emails)
    return CheckOut(
        suppressed=result.suppressed,
        invalid=[InvalidOut(index=i, email=e, message=m) for i, e, m in result.invalid],
    )
