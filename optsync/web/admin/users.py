"""Settings → Admin Settings → Users and tokens (admins only).

The same operations as ``optsync user`` and ``optsync token``, each behind a confirmation
page (a GET that changes nothing, then a POST carrying the CSRF token): remove a user,
make a user an admin or a member, reset a password (a new random password is shown once),
revoke a token. The last admin can be neither removed nor demoted (the service refuses,
race-safe). The admin audit log is shown below and downloads as CSV.

Flash messages name no address (the session cookie is signed, not encrypted).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select

from optsync.bootstrap import Context
from optsync.errors import UsageError
from optsync.services import accounts
from optsync.store.models import ApiToken, User
from optsync.web.admin.auth import PageError, SignedInUser, require_admin, verify_csrf
from optsync.web.admin.templating import Crumb, flash, redirect, render
from optsync.web.deps import get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = "/settings/admin/users"
MAX_ID = 2**63 - 1
AUDIT_SHOWN = 50
CRUMBS: list[Crumb] = [("Settings", "/settings"), ("Users and tokens", BASE)]
NO_STORE = {"Cache-Control": "no-store"}


def _id(value: str, what: str) -> int:
    """A path id, or a 404 page (never a JSON 422 or a 500 for a huge number)."""
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_ID or int(value) < 1:
        raise PageError(404, f"No such {what}", f"There is no {what} {value[:40]!r}.")
    return int(value)


def _user(ctx: Context, value: str) -> User:
    user_id = _id(value, "user")
    with ctx.db.transaction() as session:
        row = session.get(User, user_id)
    if row is None:
        raise PageError(404, "No such user", f"There is no user #{user_id}.")
    return row


def _token(ctx: Context, value: str) -> ApiToken:
    token_id = _id(value, "token")
    with ctx.db.transaction() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.id == token_id)).first()
    if row is None:
        raise PageError(404, "No such token", f"There is no token #{token_id}.")
    return row


@router.get(BASE, response_class=HTMLResponse)
def users_page(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    with ctx.db.transaction() as session:
        users = accounts.list_users(session)
        tokens = accounts.list_tokens(session)
        audit = accounts.audit_entries(session, limit=AUDIT_SHOWN)
    return render(
        request,
        "admin/users.html",
        title="Users and tokens",
        crumbs=[CRUMBS[0], ("Users and tokens", None)],
        users=users,
        tokens=tokens,
        audit=audit,
        me=user.id,
    )


@router.get(BASE + "/audit.csv")
def audit_download(
    ctx: Context = Depends(get_context), user: SignedInUser = Depends(require_admin)
) -> Response:
    with ctx.db.transaction() as session:
        entries = list(reversed(accounts.audit_entries(session, limit=None)))
    return StreamingResponse(
        accounts.audit_csv(entries),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="optsync-audit.csv"', **NO_STORE},
    )


def _confirm(
    request: Request,
    *,
    title: str,
    question: str,
    action: str,
    button: str,
    warning: str | None = None,
    error: str | None = None,
    fields: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "admin/confirm.html",
        title=title,
        crumbs=[*CRUMBS, (title, None)],
        status=status,
        question=question,
        action=action,
        button=button,
        warning=warning,
        error=error,
        fields=fields or {},
        cancel=BASE,
    )


# -- remove a user ----------------------------------------------------------------------


@router.get(BASE + "/{user_id}/remove", response_class=HTMLResponse)
def remove_page(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    target = _user(ctx, user_id)
    return _confirm(
        request,
        title="Remove a user",
        question=f"Remove {target.email}?",
        action=f"{BASE}/{target.id}/remove",
        button="Remove the user",
        warning="They can no longer sign in, and every session of theirs ends at its "
        "next request." + (" That includes yours." if target.id == user.id else ""),
    )


@router.post(BASE + "/{user_id}/remove", response_class=HTMLResponse)
def remove(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    target = _user(ctx, user_id)
    try:
        with ctx.db.transaction() as session:
            accounts.remove_user(session, target.email, actor=user.actor, now=ctx.clock())
    except UsageError as exc:
        return _confirm(
            request,
            title="Remove a user",
            question=f"Remove {target.email}?",
            action=f"{BASE}/{target.id}/remove",
            button="Remove the user",
            error=str(exc),
            status=409,
        )
    flash(request, "The user was removed; their sessions have ended.")
    return redirect(BASE)


# -- role -------------------------------------------------------------------------------


def _role_of(request: Request) -> str:
    role = request.query_params.get("to", "")
    if role not in ("admin", "member"):
        raise PageError(404, "No such role", "A user is an admin or a member.")
    return role


@router.get(BASE + "/{user_id}/role", response_class=HTMLResponse)
def role_page(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    target = _user(ctx, user_id)
    role = _role_of(request)
    article = "an admin" if role == "admin" else "a member"
    return _confirm(
        request,
        title="Change a role",
        question=f"Make {target.email} {article}?",
        action=f"{BASE}/{target.id}/role",
        button=f"Make {article}",
        fields={"role": role},
        warning="Admins change settings, re-subscribe persons and manage users and tokens."
        if role == "admin"
        else "Members can view unsubscribes and add one, nothing else.",
    )


@router.post(BASE + "/{user_id}/role", response_class=HTMLResponse)
async def set_role(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    role = str(form.get("role") or "")
    target = _user(ctx, user_id)
    try:
        with ctx.db.transaction() as session:
            accounts.set_role(session, target.email, role, actor=user.actor, now=ctx.clock())
    except UsageError as exc:
        return _confirm(
            request,
            title="Change a role",
            question=f"Change the role of {target.email}?",
            action=f"{BASE}/{target.id}/role",
            button="Change the role",
            fields={"role": role},
            error=str(exc),
            status=409,
        )
    flash(request, f"The user is now {'an admin' if role == 'admin' else 'a member'}.")
    return redirect(BASE)


# -- password ---------------------------------------------------------------------------


@router.get(BASE + "/{user_id}/reset-password", response_class=HTMLResponse)
def reset_page(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    target = _user(ctx, user_id)
    return _confirm(
        request,
        title="Reset a password",
        question=f"Give {target.email} a new password?",
        action=f"{BASE}/{target.id}/reset-password",
        button="Reset the password",
        warning="A new random password is shown once on the next page; every session of "
        "the user ends.",
    )


@router.post(BASE + "/{user_id}/reset-password", response_class=HTMLResponse)
def reset_password(
    request: Request,
    user_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    target = _user(ctx, user_id)
    password = secrets.token_urlsafe(15)  # 20 characters, 120 bits
    with ctx.db.transaction() as session:
        accounts.reset_password(session, target.email, password, actor=user.actor, now=ctx.clock())
    return render(
        request,
        "admin/password.html",
        title="New password",
        crumbs=[*CRUMBS, ("New password", None)],
        headers=NO_STORE,
        email=target.email,
        password=password,
    )


# -- tokens -----------------------------------------------------------------------------


@router.get("/settings/admin/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_page(
    request: Request,
    token_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    token = _token(ctx, token_id)
    if token.revoked_at is not None:
        flash(request, "That token was already revoked.", "warn")
        return redirect(BASE)
    return _confirm(
        request,
        title="Revoke a token",
        question=f"Revoke the token {token.name!r}?",
        action=f"/settings/admin/tokens/{token.id}/revoke",
        button="Revoke the token",
        warning="Every API call with it answers 401 from now on. This cannot be undone.",
    )


@router.post("/settings/admin/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke(
    request: Request,
    token_id: str,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    token = _token(ctx, token_id)
    try:
        with ctx.db.transaction() as session:
            accounts.revoke_token(session, str(token.id), actor=user.actor, now=ctx.clock())
    except UsageError:
        flash(request, "That token was already revoked.", "warn")
        return redirect(BASE)
    flash(request, "The token was revoked.")
    return redirect(BASE)
