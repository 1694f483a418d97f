"""``/api/v1/settings/unsubscribe-sync``: read (any token) and change (admin token)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints

from optsync.bootstrap import Context
from optsync.services import sync_settings
from optsync.services.sync_settings import SyncSettingsView
from optsync.web.api.auth import Caller, require_admin, require_token
from optsync.web.api.types import NO_CONTROL, StrictIn
from optsync.web.deps import get_context
from optsync.web.errors import error_responses

router = APIRouter(tags=["settings"])

FieldChoice = Literal["email_opt_out", "sales_opt_out"]
LivePullChoice = Literal["auto", "cdc", "poll", "off"]
LinkRuleChoice = Literal[
    "contact_then_lead", "lead_then_contact", "contact_only", "lead_only", "off"
]
Setting = Annotated[str, StringConstraints(max_length=120, pattern=NO_CONTROL)]


class SyncSettingsOut(BaseModel):
    sync_enabled: bool = Field(description="Run the nightly bidirectional sync.")
    field: FieldChoice = Field(
        description="email_opt_out (HasOptedOutOfEmail) or sales_opt_out (custom checkbox)."
    )
    sales_opt_out_field: str = Field(description="API name of the Sales Opt Out checkbox.")
    schedule: str = Field(description="Cron expression of the nightly sync.")
    timezone: str = Field(description="IANA zone the schedule is read in.")
    live_pull: LivePullChoice = Field(
        description="Salesforce-side opt-outs between runs: auto, cdc, poll or off."
    )
    poll_interval_s: int = Field(description="Seconds between polls when polling.")
    link_rule: LinkRuleChoice = Field(
        description="Which of an address's records a person links to (the primary record): "
        "contact_then_lead, lead_then_contact, contact_only, lead_only or off."
    )
    suppress_unknown: bool = Field(
        description="A Salesforce opt-out of an address optsync has never seen adds a "
        "suppressed person."
    )
    salesforce_field: str = Field(description="The API name the sync reconciles.")
    push_field: str = Field(
        description="The field real-time pushes write now (sync off: always HasOptedOutOfEmail)."
    )

    @classmethod
    def of(cls, view: SyncSettingsView) -> SyncSettingsOut:
        return cls(
            **view.as_dict(), salesforce_field=view.salesforce_field, push_field=view.push_field()
        )


class SyncSettingsIn(StrictIn):
    """The settings to change; keys left out (or null) keep their values."""

    sync_enabled: StrictBool | None = None
    field: FieldChoice | None = None
    sales_opt_out_field: Setting | None = None
    schedule: Setting | None = None
    timezone: Setting | None = None
    live_pull: LivePullChoice | None = None
    poll_interval_s: Annotated[StrictInt, Field(ge=15, le=3600)] | None = None
    link_rule: LinkRuleChoice | None = None
    suppress_unknown: StrictBool | None = None


@router.get(
    "/settings/unsubscribe-sync",
    response_model=SyncSettingsOut,
    summary="The unsubscribe-sync settings",
    responses=error_responses(401),
)
def read_settings(
    ctx: Context = Depends(get_context), _caller: Caller = Depends(require_token)
) -> SyncSettingsOut:
    with ctx.db.transaction() as session:
        return SyncSettingsOut.of(sync_settings.get_settings(session))


@router.put(
    "/settings/unsubscribe-sync",
    response_model=SyncSettingsOut,
    summary="Change the unsubscribe-sync settings (admin token)",
    responses=error_responses(401, 403, 413, 422),
)
def change_settings(
    body: SyncSettingsIn,
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_admin),
) -> SyncSettingsOut:
    changes = body.model_dump(exclude_none=True)
    with ctx.db.transaction() as session:
        view = sync_settings.update_settings(session, changes, actor=caller.actor, now=ctx.clock())
    return SyncSettingsOut.of(view)
