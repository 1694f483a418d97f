"""Bearer-token authentication for the API.

Tokens are looked up by their SHA-256 (only the hash is stored); a revoked token is
refused like an unknown one. ``last_used_at`` is written at most once a minute per token,
so a busy client does not turn every read into a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, select, update

from optsync.security import hash_api_token
from optsync.store.models import ApiToken
from optsync.web.deps import get_context
from optsync.web.errors import ApiError

LAST_USED_GRANULARITY = timedelta(minutes=1)
CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="osk_…",
    description="An API token from `optsync token create NAME [--admin]`.",
)


@dataclass(frozen=True)
class Caller:
    """The token a request was made with."""

    token_id: int
    name: str
    is_admin: bool

    @property
    def actor(self) -> str:
        """How the ledger names this caller."""
        return f"token:{self.name}"


def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401,
            "Authorization: send `Authorization: Bearer <token>`.",
            field="Authorization",
            headers=CHALLENGE,
        )
    ctx = get_context(request)
    now = ctx.clock()
    digest = hash_api_token(credentials.credentials)
    with ctx.db.transaction() as session:
        row = session.execute(
            select(
                ApiToken.id,
                ApiToken.name,
                ApiToken.is_admin,
                ApiToken.revoked_at,
                ApiToken.last_used_at,
            ).where(ApiToken.token_hash == digest)
        ).first()
        if row is None or row.revoked_at is not None:
            raise ApiError(
                401,
                "Authorization: the token is unknown or revoked.",
                field="Authorization",
                headers=CHALLENGE,
            )
        stale = row.last_used_at is None or row.last_used_at < now - LAST_USED_GRANULARITY
        if stale:  # read first: a no-op UPDATE would still take SQLite's write lock
            session.execute(
                update(ApiToken)
                .where(
                    ApiToken.id == row.id,
                    or_(
                        ApiToken.last_used_at.is_(None),
                        ApiToken.last_used_at < now - LAST_USED_GRANULARITY,
                    ),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )
    return Caller(row.id, row.name, row.is_admin)


def require_admin(caller: Caller = Depends(require_token)) -> Caller:
    if not caller.is_admin:
        raise ApiError(403, "This call needs an admin token (`optsync token create --admin`).")
    return caller
