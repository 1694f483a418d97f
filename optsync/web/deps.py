"""What routes receive from the app: the context and the request's evidence."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from optsync.bootstrap import Context
from optsync.services.links import UnsubscribeLinks

MAX_USER_AGENT = 512


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def get_links(request: Request) -> UnsubscribeLinks:
    links: UnsubscribeLinks = request.app.state.links
    return links


def evidence_of(request: Request) -> dict[str, Any]:
    """What the ledger keeps about who asked: client IP (as the proxy reported it, when
    uvicorn trusts the proxy) and user agent."""
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": (request.headers.get("user-agent") or "")[:MAX_USER_AGENT] or None,
    }
