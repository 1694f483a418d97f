"""Constrained input types shared by the API's models.

Control characters are refused at the edge because PostgreSQL cannot store NUL in text
and no name, reason or address legitimately contains one; ids are bounded to the 64-bit
range both databases use, so an absurd id is a 422, never a database error.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.convertors import StringConvertor, register_url_convertor

from optsync.domain.emails import MAX_LENGTH

MAX_EMAIL_LENGTH = MAX_LENGTH

# pydantic-core runs patterns with Rust's regex, where ``$`` is the end of the text (not
# "before a final newline" as in Python's re), as in the ECMA regexes the OpenAPI
# document promises; tests/abuse/test_full_matches.py holds both to it.
NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
MAX_ID = 2**63 - 1
MAX_BATCH = 10_000


class _IdSegment(StringConvertor):
    """``{person_id:id}``: any one path segment except ``bulk``, the sibling resource
    (``/persons/bulk``, ``/unsubscribes/bulk``). Without it ``GET /persons/bulk`` was
    routed to ``/persons/{person_id}`` and answered 422 instead of 405 with ``Allow``; any
    other non-number still reaches the route and is its 422."""

    regex = r"(?!bulk\Z)[^/]+"


register_url_convertor("id", _IdSegment())


class StrictIn(BaseModel):
    """The base of every request body: unknown keys refused, and every value must already
    have its JSON type (``true``, ``"1"`` or ``1.0`` is not the integer 1, ``"true"`` is
    not a boolean). An enum field opts out with ``Strict(False)``: JSON has no enum type,
    so its value is a string checked against the members."""

    model_config = ConfigDict(extra="forbid", strict=True)


Text = Annotated[str, StringConstraints(pattern=NO_CONTROL)]
EmailText = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    Field(examples=["ann@example.com"], description="An address of at most 254 characters."),
]
PersonId = Annotated[int, Field(ge=1, le=MAX_ID, examples=[42])]
Reason = Annotated[
    str,
    StringConstraints(max_length=1000, pattern=NO_CONTROL),
    Field(description="Why (kept in the ledger), up to 1,000 characters."),
]
