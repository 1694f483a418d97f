"""``/login`` and ``/logout``.

A failed sign-in says only "email or password is wrong" (no hint whether the address
exists) and spends the same argon2 work either way. Attempts are counted per address and
client IP in the database (:mod:`optsync.web.admin.throttle`), reserved *before* the
password is verified, so concurrent attempts cannot slip past the limit; the fifth
failure within the window answers 429 with the time to retry. Each process verifies only
a few passwords at once (503 with ``Retry-After`` when it is too busy). Logs name the
user id, never an address.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from optsync.bootstrap import Context
from optsync.security import hash_password, verify_password
from optsync.services.sync_settings import get_settings
from optsync.store.models import User
from optsync.web.admin.auth import (
    end_session,
    safe_next,
    signed_in_user,
    start_session,
    verify_csrf,
)
from optsync.web.admin.templating import redirect, render
from optsync.web.admin.throttle import (
    BUSY_RETRY_AFTER,
    GateBusy,
    LoginThrottle,
    VerificationGate,
)
from optsync.web.deps import get_context

log = logging.getLogger("optsync.web.admin")

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

MAX_FIELD = 1024
MAX_CONCURRENT_VERIFICATIONS = VerificationGate().limit
_DUMMY_HASH: list[str] = []
_DUMMY_LOCK = threading.Lock()


def _dummy_hash() -> str:
    """A hash to verify against when the address is unknown (same work, same timing)."""
    with _DUMMY_LOCK:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password("not a real password, only for timing"))
    return _DUMMY_HASH[0]


def verification_gate(request: Request) -> VerificationGate:
    """This process's gate (one per app; ``install_admin`` creates it)."""
    gate: VerificationGate = request.app.state.verification_gate
    return gate


def _form(
    request: Request,
    *,
    email: str = "",
    next_path: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "admin/login.html",
        title="Sign in",
        crumbs=[("Sign in", None)],
        status=status,
        headers=headers,
        email=email,
        next_path=safe_next(next_path),
        error=error,
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> Response:
    if signed_in_user(request) is not None:
        return redirect(safe_next(next))
    return _form(request, next_path=next)


def _check_password(ctx: Context, email: str, password: str) -> User | None:
    with ctx.db.transaction() as session:
        user = session.scalars(select(User).where(User.email == email)).first()
        if user is None:
            verify_password(_dummy_hash(), password)
            return None
        if not verify_password(user.password_hash, password):
            return None
        user.last_login_at = ctx.clock()
        session.flush()
        session.expunge(user)
        return user


def _throttled(
    request: Request, email: str, next_path: str, retry_at_text: str, seconds: int
) -> HTMLResponse:
    return _form(
        request,
        email=email,
        next_path=next_path,
        status=429,
        headers={"Retry-After": str(max(1, seconds))},
        error=f"Too many failed sign-ins for this address from your network. Try again "
        f"after {retry_at_text}.",
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: Context = Depends(get_context)) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip().lower()[:MAX_FIELD]
    password = str(form.get("password") or "")[:MAX_FIELD]
    next_path = str(form.get("next") or "")[:MAX_FIELD]
    ip = request.client.host if request.client else None
    throttle = LoginThrottle(ctx.db, ctx.settings.resolved_secret_key, ctx.clock)
    key = throttle.key(email, ip)

    def refusal(retry_at: datetime) -> HTMLResponse:
        seconds = int((retry_at - ctx.clock()).total_seconds()) + 1
        # in the configured zone, like every time on the pages (the header stays seconds)
        with ctx.db.transaction() as session:
            tz = ZoneInfo(get_settings(session).timezone)
        text = retry_at.astimezone(tz).strftime("%H:%M:%S %Z")
        return _throttled(request, email, next_path, text, seconds)

    if not email or not password:
        retry_at = await run_in_threadpool(throttle.retry_at, key)
        if retry_at is not None:
            return refusal(retry_at)
        return _form(
            request,
            email=email,
            next_path=next_path,
            status=422,
            error="Enter your email address and your password.",
        )
    reserved = await run_in_threadpool(throttle.reserve, key)
    if isinstance(reserved, datetime):
        log.warning("sign-in refused: too many attempts", extra={"ip": ip})
        return refusal(reserved)
    try:
        async with verification_gate(request).slot():
            user = await run_in_threadpool(_check_password, ctx, email, password)
    except GateBusy:
        await run_in_threadpool(throttle.release, reserved)
        log.warning("sign-in refused: too many password checks at once", extra={"ip": ip})
        return _form(
            request,
            email=email,
            next_path=next_path,
            status=503,
            headers={"Retry-After": str(BUSY_RETRY_AFTER)},
            error="Too many sign-ins at this moment. Try again in a few seconds.",
        )
    if user is None:
        log.info("sign-in failed", extra={"ip": ip})
        retry_at = await run_in_threadpool(throttle.retry_at, key)
        if retry_at is not None:
            return refusal(retry_at)
        return _form(
            request,
            email=email,
            next_path=next_path,
            status=401,
            error="The email address or the password is wrong.",
        )
    await run_in_threadpool(throttle.clear, key)
    start_session(request, user, ctx.clock().timestamp())
    log.info("user %d signed in", user.id)
    return redirect(safe_next(next_path))


@router.post("/logout")
def logout(request: Request) -> Response:
    end_session(request)
    return redirect("/login")
