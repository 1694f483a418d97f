"""``/api/v1/links``: a person's unsubscribe URL and the List-Unsubscribe headers, for
a sending system to put in each email it sends."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from optsync.bootstrap import Context
from optsync.services.links import UnsubscribeLinks
from optsync.services.transactions import in_transaction
from optsync.web.api.auth import Caller, require_token
from optsync.web.api.types import EmailText, StrictIn
from optsync.web.deps import get_context, get_links
from optsync.web.errors import error_responses

router = APIRouter(tags=["links"])


class LinkIn(StrictIn):
    email: EmailText


class HeadersOut(BaseModel):
    list_unsubscribe: str = Field(
        serialization_alias="List-Unsubscribe", examples=["<https://optsync.example/u/MTIz.x>"]
    )
    list_unsubscribe_post: str = Field(
        serialization_alias="List-Unsubscribe-Post", examples=["List-Unsubscribe=One-Click"]
    )


class LinkOut(BaseModel):
    url: str
    headers: HeadersOut


@router.post(
    "/links",
    response_model=LinkOut,
    summary="The unsubscribe URL and List-Unsubscribe headers for an address (added if new)",
    responses=error_responses(401, 409, 413, 422),
)
def make_link(
    body: LinkIn,
    ctx: Context = Depends(get_context),
    links: UnsubscribeLinks = Depends(get_links),
    _caller: Caller = Depends(require_token),
) -> LinkOut:
    made = in_transaction(ctx.db, lambda s: links.link_for(s, body.email, ctx.clock()))
    headers = made.headers
    return LinkOut(
        url=made.url,
        headers=HeadersOut(
            list_unsubscribe=headers["List-Unsubscribe"],
            list_unsubscribe_post=headers["List-Unsubscribe-Post"],
        ),
    )
