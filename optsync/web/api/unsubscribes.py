"""``/api/v1/unsubscribes``: record one or many unsubscribes; re-subscribe (admin); list
them with filters and cursor paging (the query builder is
:mod:`optsync.services.unsubscribe_list`, shared with the Unsubscribes tab).

Sources an API client may claim: ``api`` (the default: the client's own decision, e.g. a
reply saying "stop") and ``csv`` (a suppression list exported from another tool). The
others are reserved for the paths that produce their evidence: ``page`` and ``one_click``
only come from a signed link, ``cli`` from the command line, ``admin`` from the web app,
``salesforce`` from a sync; letting a client claim them would make the ledger lie.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, Strict, model_validator
from sqlalchemy.orm import Session

from optsync.bootstrap import Context
from optsync.domain.optout import Source
from optsync.services import bulk_unsubscribes, optouts, unsubscribe_list
from optsync.services.optouts import ChangeResult, resubscribe_email
from optsync.services.salesforce_field import opt_out_field_state
from optsync.services.sync_settings import get_settings
from optsync.services.transactions import in_transaction
from optsync.store.models import Person
from optsync.web.api.auth import Caller, require_admin, require_token
from optsync.web.api.types import (
    MAX_BATCH,
    MAX_ID,
    NO_CONTROL,
    EmailText,
    PersonId,
    Reason,
    StrictIn,
)
from optsync.web.deps import evidence_of, get_context
from optsync.web.errors import ApiError, error_responses
from optsync.web.metrics import UNSUBSCRIBES

router = APIRouter(tags=["unsubscribes"])


class ApiSource(StrEnum):
    """The sources an API client may claim (see the module docstring)."""

    API = "api"
    CSV = "csv"


SourceIn = Annotated[ApiSource, Strict(False)]  # a JSON string checked against the members


class UnsubscribeIn(StrictIn):
    """Exactly one of ``email`` (added if unknown) and ``person_id``."""

    email: EmailText | None = None
    person_id: PersonId | None = None
    source: SourceIn = ApiSource.API
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_target(self) -> UnsubscribeIn:
        if (self.email is None) == (self.person_id is None):
            raise ValueError("give exactly one of email and person_id")
        return self


class UnsubscribeOut(BaseModel):
    person_id: int
    email: str
    changed: bool = Field(description="true: unsubscribed now (201); false: already was (200).")
    unsubscribed_at: datetime | None
    source: str | None = Field(description="The source of the unsubscribe in force.")


class BulkUnsubscribeIn(StrictIn):
    emails: list[EmailText] = Field(max_length=MAX_BATCH, description="Up to 10,000 addresses.")
    source: SourceIn = ApiSource.API
    reason: Reason | None = None


class ItemErrorOut(BaseModel):
    index: int = Field(description="Position in `emails` (from 0).")
    field: str
    message: str


class BulkUnsubscribeOut(BaseModel):
    new: int = Field(description="Unsubscribed by this request.")
    existing: int = Field(description="Already unsubscribed (or repeated in the request).")
    errors: list[ItemErrorOut]


class ResubscribeOut(BaseModel):
    person_id: int
    email: str
    changed: bool = Field(description="false when the person was not unsubscribed.")
    field: str = Field(description="The Salesforce field optsync writes for opt-outs.")
    salesforce_field_still_set: bool | None = Field(
        description="Whether Salesforce still has the field set (then the next sync opts "
        "the person out again: clear it there too); null when it could not be checked."
    )
    salesforce_check: str | None = Field(description="Why the check gave null, if it did.")


def _out(result: ChangeResult) -> UnsubscribeOut:
    person = result.person
    return UnsubscribeOut(
        person_id=person.id,
        email=person.email,
        changed=result.changed,
        unsubscribed_at=person.unsubscribed_at,
        source=person.unsubscribe_source,
    )


@router.post(
    "/unsubscribes",
    response_model=UnsubscribeOut,
    status_code=201,
    summary="Unsubscribe one person (201 new, 200 already unsubscribed)",
    responses=error_responses(
        401,
        404,
        409,
        413,
        422,
        also={200: {"model": UnsubscribeOut, "description": "Already unsubscribed"}},
    ),
)
def unsubscribe_one(
    body: UnsubscribeIn,
    request: Request,
    response: Response,
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_token),
) -> UnsubscribeOut:
    source = Source(body.source.value)
    evidence = evidence_of(request)
    now = ctx.clock()

    def work(session: Session) -> UnsubscribeOut:
        if body.person_id is not None:
            result = optouts.unsubscribe_by_id(
                session,
                body.person_id,
                source=source,
                actor=caller.actor,
                now=now,
                reason=body.reason,
                evidence=evidence,
            )
        else:
            result = optouts.unsubscribe_email(
                session,
                body.email or "",
                source=source,
                actor=caller.actor,
                now=now,
                reason=body.reason,
                evidence=evidence,
            )
        return _out(result)

    out = in_transaction(ctx.db, work)
    if out.changed:
        UNSUBSCRIBES.labels(source.value).inc()
    response.status_code = 201 if out.changed else 200
    return out


@router.post(
    "/unsubscribes/bulk",
    response_model=BulkUnsubscribeOut,
    summary="Unsubscribe up to 10,000 addresses; bad ones are reported, not fatal",
    responses=error_responses(401, 413, 422),
)
def unsubscribe_many(
    body: BulkUnsubscribeIn,
    request: Request,
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_token),
) -> BulkUnsubscribeOut:
    report = bulk_unsubscribes.unsubscribe_many(
        ctx.db,
        body.emails,
        source=Source(body.source.value),
        actor=caller.actor,
        now=ctx.clock(),
        reason=body.reason,
        evidence=evidence_of(request),
    )
    if report.new:
        UNSUBSCRIBES.labels(body.source.value).inc(report.new)
    return BulkUnsubscribeOut(
        new=report.new,
        existing=report.existing,
        errors=[
            ItemErrorOut(index=e.index, field=e.field, message=e.message) for e in report.errors
        ],
    )


@router.delete(
    "/unsubscribes/{person_id:id}",
    response_model=ResubscribeOut,
    summary="Re-subscribe a person (admin token; ledger entry kept, nothing sent to Salesforce)",
    responses=error_responses(401, 403, 404, 422),
)
def resubscribe(
    person_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    reason: Annotated[
        str,
        Query(
            min_length=1,
            max_length=1000,
            pattern=NO_CONTROL,
            description="Why this person may be emailed again.",
        ),
    ],
    request: Request,
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_admin),
) -> ResubscribeOut:
    def work(session: Session) -> tuple[ChangeResult, str]:
        person = optouts.lock_person(session, person_id)
        if person is None:
            raise ApiError(404, f"person_id: no person {person_id}.", field="person_id")
        result = resubscribe_email(
            session,
            person.email,
            source=Source.API,
            actor=caller.actor,
            now=ctx.clock(),
            reason=reason,
            evidence=evidence_of(request),
        )
        return result, get_settings(session).push_field()

    result, field = in_transaction(ctx.db, work)
    person: Person = result.person
    state = opt_out_field_state(ctx, person.salesforce_id, person.salesforce_object, field)
    return ResubscribeOut(
        person_id=person.id,
        email=person.email,
        changed=result.changed,
        field=field,
        salesforce_field_still_set=state.still_set,
        salesforce_check=state.note,
    )


# -- the list ---------------------------------------------------------------------------

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_DATE_OR_TIME = (
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2}))?$"
)
_BOUND = (
    "A day `YYYY-MM-DD` in the configured time zone (`since`: from its start; `until`: to "
    "its end), or a time with its offset (`2026-12-01T08:00:00Z`; `until` exclusive)."
)
_RUN_ID = r"^[1-9][0-9]{0,18}$"
StateName = Literal[
    "pending", "pushed", "failed", "not_linked", "cancelled", "none", "records_failed"
]
SortName = Literal["newest", "oldest", "email", "email_desc"]


class ListedUnsubscribeOut(BaseModel):
    person_id: int
    email: str
    salesforce_id: str | None
    salesforce_object: Literal["Contact", "Lead", "Account"] | None
    source: str | None = Field(description="The source of the unsubscribe in force.")
    unsubscribed_at: datetime | None
    push_state: Literal["pending", "pushed", "failed", "not_linked", "cancelled"] | None = Field(
        description="The latest push's state; null when there was none (e.g. pulled from "
        "Salesforce, which already has it)."
    )
    push_code: str | None = Field(description="Salesforce error code (failed only).")
    push_fix: str | None = Field(description="What to do about it (failed only).")


class UnsubscribeListOut(BaseModel):
    unsubscribes: list[ListedUnsubscribeOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def _wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


@router.get(
    "/unsubscribes",
    response_model=UnsubscribeListOut,
    summary="List unsubscribes with filters and cursor paging (`Accept: text/csv` exports all)",
    responses=error_responses(
        401,
        422,
        also={
            200: {
                "description": "A page of unsubscribes (JSON), or every matching row as CSV "
                "when the request says `Accept: text/csv`.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    ),
)
def list_unsubscribes(
    request: Request,
    source: Annotated[
        Source | None, Query(description="Where the unsubscribe in force came from.")
    ] = None,
    state: Annotated[
        StateName | None,
        Query(description="The latest push's state; `none`: never pushed."),
    ] = None,
    code: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=80,
            pattern=r"^[A-Za-z0-9_]+$",
            description="The latest push failed with this Salesforce error code.",
        ),
    ] = None,
    object_: Annotated[
        Literal["Contact", "Lead", "Account"] | None,
        Query(alias="object", description="The linked record's object."),
    ] = None,
    since: Annotated[
        str | None, Query(max_length=40, pattern=_DATE_OR_TIME, description=_BOUND)
    ] = None,
    until: Annotated[
        str | None, Query(max_length=40, pattern=_DATE_OR_TIME, description=_BOUND)
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=254,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Part of the address, or a 15- or 18-character Salesforce id.",
        ),
    ] = None,
    pulled_by_run: Annotated[
        str | None,
        Query(
            max_length=19,
            pattern=_RUN_ID,
            description="A sync run's id: only the persons that run unsubscribed here "
            "(pulled from Salesforce).",
        ),
    ] = None,
    pushed_by_run: Annotated[
        str | None,
        Query(
            max_length=19,
            pattern=_RUN_ID,
            description="A sync run's id: only the persons whose Salesforce records that "
            "run set (pushed).",
        ),
    ] = None,
    sort: Annotated[SortName, Query(description="Order of the list.")] = "newest",
    cursor: Annotated[
        str | None,
        Query(
            max_length=623,
            pattern=r"^[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{22}$",
            description="`next_cursor` of the previous page, as given.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = (
        DEFAULT_LIMIT
    ),
    ctx: Context = Depends(get_context),
    caller: Caller = Depends(require_token),
) -> Response | UnsubscribeListOut:
    raw = {
        "source": source.value if source else "",
        "state": state or "",
        "code": code or "",
        "object": object_ or "",
        "since": since or "",
        "until": until or "",
        "q": q or "",
        "pulled_by_run": pulled_by_run or "",
        "pushed_by_run": pushed_by_run or "",
        "sort": sort,
        "cursor": cursor or "",
    }
    secret = ctx.settings.resolved_secret_key
    with ctx.db.transaction() as session:
        query = unsubscribe_list.parse_query(
            raw, tz=get_settings(session).timezone, secret_key=secret
        )
        if not _wants_csv(request):
            page = unsubscribe_list.read_page(session, query, limit, secret_key=secret)
            return UnsubscribeListOut(
                unsubscribes=[
                    ListedUnsubscribeOut(
                        person_id=r.id,
                        email=r.email,
                        salesforce_id=r.salesforce_id,
                        salesforce_object=r.salesforce_object,  # type: ignore[arg-type]
                        source=r.source,
                        unsubscribed_at=r.unsubscribed_at,
                        push_state=r.push_state,  # type: ignore[arg-type]
                        push_code=r.push_code,
                        push_fix=r.push_fix,
                    )
                    for r in page.rows
                ],
                next_cursor=page.next_cursor,
            )
    return StreamingResponse(
        unsubscribe_list.csv_export(ctx.db, query),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="optsync-unsubscribes.csv"'},
    )
