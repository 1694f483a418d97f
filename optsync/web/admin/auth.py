"""Who is asking: signed session cookies, CSRF tokens and the two roles.

The session is a signed cookie (Starlette's ``SessionMiddleware``, itsdangerous under the
hood) holding only the user's id, the user's session epoch, a CSRF token and when it was
issued. The key is derived
from ``OPTSYNC_SECRET_KEY`` for this one purpose, so a leaked session key signs nothing
else. The cookie is ``HttpOnly`` and ``SameSite=Lax`` always, ``Secure`` when the public
base URL is https, and expires 12 hours after sign-in (the signature's timestamp is
checked, not just the browser's ``Max-Age``). The user row is read on every request, so
removing a user or changing a role takes effect at once; the session's epoch must equal
the user's ``session_epoch``, so a password reset or a secret-key rotation (a new epoch)
ends every older session, and a user re-created under a reused id never inherits one.

CSRF: every form carries the session's random token in a hidden field; every POST to an
admin page (and to ``/login`` itself, against login CSRF) is refused with a 403 page when
the field is missing or differs. ``SameSite=Lax`` already stops most cross-site posts;
the token also covers same-site attackers and older browsers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from sqlalchemy import select
from starlette.middleware.sessions import SessionMiddleware

from optsync.bootstrap import Context
from optsync.security import constant_time_equal, derive_key
from optsync.store.models import User

SESSION_COOKIE = "optsync_session"
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
DEFAULT_NEXT = "/settings"


class LoginRequired(Exception):
    """Raised for an anonymous request to a page that needs a user; becomes a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class PageError(Exception):
    """An error shown as an HTML page (403, 404, 429...) instead of the API's JSON."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class SignedInUser:
    id: int
    email: str
    is_admin: bool

    @property
    def actor(self) -> str:
        """How the ledger and the settings' ``updated_by`` name this user."""
        return f"user:{self.email}"

    @property
    def role(self) -> str:
        return "admin" if self.is_admin else "member"


def install_sessions(app: FastAPI, ctx: Context) -> None:
    secure = ctx.settings.base_url.startswith("https://")
    app.add_middleware(
        SessionMiddleware,
        secret_key=derive_key(ctx.settings.resolved_secret_key, "web-sessions").hex(),
        session_cookie=SESSION_COOKIE,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        same_site="lax",
        https_only=secure,
    )


# -- CSRF -------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the login form needs one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def verify_csrf(request: Request) -> None:
    """Dependency of every admin route: a POST must carry the session's token."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not expected
        or not constant_time_equal(sent, expected)
    ):
        raise PageError(
            403,
            "Form expired",
            "This form was not sent from an optsync page of your current session, so "
            "nothing was changed. Go back, reload the page and try again.",
        )


# -- who is signed in -------------------------------------------------------------------


def start_session(request: Request, user: User, issued_at: float) -> None:
    """Replace whatever the cookie held (no fixation) with a fresh session."""
    request.session.clear()
    request.session.update(
        uid=int(user.id),
        ep=user.session_epoch,
        csrf=secrets.token_urlsafe(32),
        iat=int(issued_at),
    )


def end_session(request: Request) -> None:
    request.session.clear()


def signed_in_user(request: Request) -> SignedInUser | None:
    ctx: Context = request.app.state.ctx
    uid = request.session.get("uid")
    issued = request.session.get("iat")
    epoch = request.session.get("ep")
    if not isinstance(uid, int) or not isinstance(issued, int) or not isinstance(epoch, str):
        return None
    if ctx.clock().timestamp() - issued > SESSION_LIFETIME.total_seconds():
        return None
    with ctx.db.transaction() as session:
        row = session.execute(
            select(User.id, User.email, User.is_admin, User.session_epoch).where(User.id == uid)
        ).first()
    if row is None or not constant_time_equal(row.session_epoch, epoch):
        return None
    return SignedInUser(id=int(row.id), email=row.email, is_admin=bool(row.is_admin))


def _here(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def require_user(request: Request) -> SignedInUser:
    """Any signed-in user (member or admin); anonymous requests go to ``/login?next=``."""
    user = signed_in_user(request)
    if user is None:
        raise LoginRequired(_here(request) if request.method == "GET" else DEFAULT_NEXT)
    request.state.user = user
    return user


def require_admin(request: Request) -> SignedInUser:
    """Admins only: a member gets a 403 page, never the page itself."""
    user = require_user(request)
    if not user.is_admin:
        raise PageError(
            403,
            "Admins only",
            "This page is for admins. Members can view the unsubscribes and add one; ask "
            "an admin to change settings or remove an unsubscribe.",
        )
    return user


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a local path only (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ch in value for ch in "\r\n\\"):
        return DEFAULT_NEXT
    return value


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(safe_next(next_path), safe="/")
