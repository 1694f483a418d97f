"""``/api/v1/persons``: upsert one or many persons; look one up with their opt-out and
push state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.bootstrap import Context
from optsync.services import person_views
from optsync.services.optouts import parse_email
from optsync.services.person_views import PersonView
from optsync.services.persons import (
    MAX_NAME_LENGTH,
    PersonInput,
    RowError,
    upsert_chunk,
    upsert_person,
    validate_person,
)
from optsync.services.transactions import in_transaction
from optsync.store.models import Person
from optsync.web.api.auth import Caller, require_token
from optsync.web.api.types import (
    MAX_BATCH,
    MAX_EMAIL_LENGTH,
    MAX_ID,
    NO_CONTROL,
    EmailText,
    StrictIn,
)
from optsync.web.deps import get_context
from optsync.web.errors import ApiError, error_responses

router = APIRouter(tags=["persons"])

CHUNK_SIZE = 1000

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=NO_CONTROL)]


class PersonIn(StrictIn):
    """A person to create, or to update when the email is known (fields left out or null
    keep their stored values)."""

    email: EmailText
    salesforce_id: Annotated[str, StringConstraints(max_length=18)] | None = Field(
        None, description="15- or 18-character Contact (003…) or Lead (00Q…) id."
    )
    first_name: Name | None = None
    last_name: Name | None = None


class PushRecordOut(BaseModel):
    record_id: str
    object: Literal["Contact", "Lead", "Account"]
    state: Literal["sent", "failed"]
    code: str | None
    message: str | None
    fix: str | None


class PushOut(BaseModel):
    state: Literal["pending", "pushed", "failed", "not_linked", "cancelled"] = Field(
        description="pending: queued or being sent; pushed: set in Salesforce; failed: "
        "stopped, see code/message/fix; not_linked: Not in Salesforce (no record has the "
        "address; pushed when one appears, not a failure)."
    )
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    field: str | None = Field(description="The Salesforce field the push wrote.")
    code: str | None = Field(description="Salesforce error code (failed only).")
    message: str | None = Field(description="Salesforce error message (failed only).")
    fix: str | None = Field(description="What to do about it (failed only).")
    records: list[PushRecordOut] = Field(
        default_factory=list,
        description="Each record of the address this push set or failed to set.",
    )


class RecordOut(BaseModel):
    """A Salesforce record with the person's address (the opt-out reaches every one)."""

    record_id: str
    object: Literal["Contact", "Lead", "Account"] = Field(description="Account: a Person Account.")
    opted_out: bool | None = Field(
        description="The synced field's value as optsync last saw it (null: not read yet)."
    )
    converted: bool = Field(description="A converted Lead (never written).")
    deleted: bool
    primary: bool = Field(description="The record the person is linked to.")


class PersonOut(BaseModel):
    id: int
    email: str
    salesforce_id: str | None
    salesforce_object: Literal["Contact", "Lead", "Account"] | None = Field(
        description="The primary record's object (Account: a Person Account)."
    )
    first_name: str | None
    last_name: str | None
    unsubscribed: bool
    unsubscribed_at: datetime | None
    unsubscribe_source: str | None
    resubscribed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    push: PushOut | None = Field(
        description="The latest push to Salesforce; null if never unsubscribed."
    )
    records: list[RecordOut] = Field(
        default_factory=list,
        description="Every Salesforce record optsync knows with this address, the primary "
        "(linked) one first.",
    )

    @classmethod
    def of(cls, view: PersonView) -> PersonOut:
        push = None
        if view.push:
            push = {**view.push.__dict__, "records": [r.__dict__ for r in view.push.records]}
        data = {
            **view.__dict__,
            "push": push,
            "records": [r.__dict__ for r in view.records],
        }
        data.pop("pushes", None)
        return cls.model_validate(data)


class UpsertOut(BaseModel):
    outcome: Literal["created", "updated", "unchanged"]
    person: PersonOut


class BulkPersonsIn(StrictIn):
    persons: list[PersonIn] = Field(max_length=MAX_BATCH, description="Up to 10,000 persons.")


class RowErrorOut(BaseModel):
    index: int = Field(description="Position of the row in the request (from 0).")
    field: str
    message: str


class BulkPersonsOut(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    linked: int = Field(description="Persons that got a Salesforce id by this request.")
    errors: list[RowErrorOut]


def _row_error(error: RowError) -> RowErrorOut:
    field, _, message = error.reason.partition(":")
    return RowErrorOut(index=error.line, field=field, message=message.strip() or error.reason)


def _validated(index: int, body: PersonIn) -> PersonInput | RowError:
    return validate_person(index, body.email, body.salesforce_id, body.first_name, body.last_name)


@router.post(
    "/persons",
    response_model=UpsertOut,
    status_code=200,
    summary="Create or update one person by email",
    responses=error_responses(
        401, 409, 413, 422, also={201: {"model": UpsertOut, "description": "Created"}}
    ),
)
def upsert_one(
    body: PersonIn,
    response: Response,
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> UpsertOut:
    checked = _validated(0, body)
    if isinstance(checked, RowError):
        err = _row_error(checked)
        raise ApiError(422, f"{err.field}: {err.message}", field=err.field)

    def work(session: Session) -> UpsertOut:
        if checked.salesforce_id:
            owner = session.execute(
                select(Person.id, Person.email).where(Person.salesforce_id == checked.salesforce_id)
            ).first()
            if owner is not None and owner.email != checked.email:
                raise ApiError(
                    409,
                    f"salesforce_id: already linked to person {owner.id}.",
                    field="salesforce_id",
                )
        person, outcome = upsert_person(session, checked, ctx.clock())
        return UpsertOut(
            outcome=outcome,  # type: ignore[arg-type]
            person=PersonOut.of(person_views.view_of(session, person)),
        )

    result = in_transaction(ctx.db, work)
    response.status_code = 201 if result.outcome == "created" else 200
    return result


@router.post(
    "/persons/bulk",
    response_model=BulkPersonsOut,
    summary="Create or update up to 10,000 persons; bad rows are reported, not fatal",
    responses=error_responses(401, 413, 422),
)
def upsert_many(
    body: BulkPersonsIn,
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> BulkPersonsOut:
    now = ctx.clock()
    errors: list[RowErrorOut] = []
    good: list[PersonInput] = []
    emails: dict[str, int] = {}
    ids: dict[str, int] = {}
    for index, row in enumerate(body.persons):
        checked = _validated(index, row)
        if isinstance(checked, RowError):
            errors.append(_row_error(checked))
        elif checked.email in emails:
            errors.append(
                RowErrorOut(
                    index=index, field="email", message=f"duplicate of row {emails[checked.email]}"
                )
            )
        elif checked.salesforce_id and checked.salesforce_id in ids:
            errors.append(
                RowErrorOut(
                    index=index,
                    field="salesforce_id",
                    message=f"already used on row {ids[checked.salesforce_id]}",
                )
            )
        else:
            emails[checked.email] = index
            if checked.salesforce_id:
                ids[checked.salesforce_id] = index
            good.append(checked)
    created = updated = unchanged = linked = 0
    for start in range(0, len(good), CHUNK_SIZE):
        report = upsert_chunk(ctx.db, good[start : start + CHUNK_SIZE], now=now)
        created += report.created
        updated += report.updated
        unchanged += report.unchanged
        linked += report.linked
        errors.extend(_row_error(e) for e in report.rejected)
    errors.sort(key=lambda e: e.index)
    return BulkPersonsOut(
        rows=len(body.persons),
        created=created,
        updated=updated,
        unchanged=unchanged,
        linked=linked,
        errors=errors,
    )


@router.get(
    "/persons",
    response_model=PersonOut,
    summary="Look a person up by email",
    responses=error_responses(401, 404, 422),
)
def find_by_email(
    email: Annotated[
        str, Query(max_length=MAX_EMAIL_LENGTH, description="Any form; it is normalised.")
    ],
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> PersonOut:
    normal = parse_email(email)
    with ctx.db.transaction() as session:
        view = person_views.find_by_email(session, normal)
    if view is None:
        raise ApiError(404, "email: no person has this address.", field="email")
    return PersonOut.of(view)


@router.get(
    "/persons/{person_id:id}",
    response_model=PersonOut,
    summary="Read a person by id",
    responses=error_responses(401, 404, 422),
)
def read(
    person_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    ctx: Context = Depends(get_context),
    _caller: Caller = Depends(require_token),
) -> PersonOut:
    with ctx.db.transaction() as session:
        view = person_views.find_by_id(session, person_id)
    if view is None:
        raise ApiError(404, f"person_id: no person {person_id}.", field="person_id")
    return PersonOut.of(view)
