"""The Integrations tab: the unsubscribe-sync settings, setup checks, next run, Sync now
and Dry run, run history, the activity chart and the Salesforce connection.

Saving validates every field on its own so each error shows next to its field, and
stores nothing unless all are valid. Stored secrets are never sent back to the browser:
secret inputs are always empty, a badge says one is stored, and leaving the input empty
keeps it. A connection test answers on the same page, beside its button, with the form
as typed (the form's action carries the ``#connection-result`` fragment, so the browser
lands there); Disconnect asks on a page of its own first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.datastructures import FormData, UploadFile

from optsync.bootstrap import Context
from optsync.domain.schedule import ScheduleError, next_run
from optsync.errors import OptsyncError, UsageError
from optsync.salesforce.config import with_stored_secrets
from optsync.salesforce.connection import (
    DEFAULT_API_VERSION,
    ConnectionConfig,
    delete_connection,
    env_overrides,
    load_connection,
)
from optsync.services.salesforce_connection import save_tested, try_in_force
from optsync.services.salesforce_setup import LINK_FIX, Check
from optsync.services.sync_run import history
from optsync.services.sync_settings import (
    SyncSettingsView,
    get_settings,
    update_settings,
    validate_changes,
)
from optsync.store.models import Person, SalesforceConnection
from optsync.web.admin.activity import last_days
from optsync.web.admin.auth import SignedInUser, require_admin, verify_csrf
from optsync.web.admin.chart import activity_svg, legend, sources_in
from optsync.web.admin.health_banner import health_banner
from optsync.web.admin.live_pull import LIVE_PULL_LABELS, live_state_lines
from optsync.web.admin.remote import CheckCache, try_connection
from optsync.web.admin.templating import Crumb, field_message, flash, redirect, render
from optsync.web.deps import get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = "/settings/admin/unsubscribes"
TAB = f"{BASE}?tab=integrations"
CRUMBS: list[Crumb] = [
    ("Settings", "/settings"),
    ("Admin Settings", "/settings#admin-settings"),
    ("Unsubscribes", BASE),
    ("Integrations tab", None),
]
COMMON_ZONES = (
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)
AUTH_LABELS = {
    "client_credentials": "Client credentials",
    "jwt": "JWT bearer (private key)",
    "password": "Username and password",
}
MAX_PEM = 64 * 1024
NAMED_UNLINKED = 10
"""How many unsubscribed addresses without a Salesforce record the check names."""
PAGE_FIXES = {
    "connection": "Fill in “Connect to Salesforce” below and press “Save and test”.",
    "persons linked": (
        "Nothing to fix here until Salesforce has a Contact or Lead with the address: "
        "“Sync now” above links every address that has one."
    ),
}
"""Fixes that send people to the command line, said for this page, which has the control."""


def _next_run_text(settings: SyncSettingsView, now: datetime) -> dict[str, str] | None:
    if not settings.sync_enabled:
        return None
    try:
        at = next_run(settings.schedule, settings.timezone, now)
    except ScheduleError:
        return None
    local = at.astimezone(ZoneInfo(settings.timezone))
    return {
        "local": local.strftime("%A %Y-%m-%d %H:%M %Z"),
        "zone": settings.timezone,
        "utc": at.strftime("%Y-%m-%d %H:%M UTC"),
    }


def check_cache(request: Request) -> CheckCache:
    cache: CheckCache = request.app.state.check_cache
    return cache


def _page_check(check: Check) -> Check:
    """A check as this page says it: a fix that points at the command line points at the
    control on this page instead."""
    if check.ok or check.name not in PAGE_FIXES:
        return check
    if check.name == "connection" and check.fix and "optsync salesforce connect" not in check.fix:
        return check  # a fix of Salesforce's own (a wrong secret, say) stays as it is
    if check.name == "persons linked" and check.fix != LINK_FIX:
        return check
    return Check(check.name, check.ok, check.detail, PAGE_FIXES[check.name])


def _unlinked_unsubscribed(ctx: Context) -> tuple[list[tuple[int, str]], int]:
    """The unsubscribed persons with no Salesforce record (the first few, by address)."""
    with ctx.db.transaction() as session:
        where = (Person.salesforce_id.is_(None), Person.unsubscribed.is_(True))
        rows = session.execute(
            select(Person.id, Person.email)
            .where(*where)
            .order_by(Person.email)
            .limit(NAMED_UNLINKED)
        ).all()
        total = session.scalar(select(func.count(Person.id)).where(*where)) or 0
    return [(int(i), str(e)) for i, e in rows], int(total)


def render_tab(
    request: Request,
    ctx: Context,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    conn_values: dict[str, Any] | None = None,
    conn_errors: dict[str, str] | None = None,
    conn_result: tuple[bool, str] | None = None,
    stored_result: tuple[bool, str] | None = None,
    notify: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The whole tab; ``values``/``errors`` re-show a form that failed validation, and
    ``conn_result``/``stored_result`` the outcome of a test beside its button."""
    now = ctx.clock()
    with ctx.db.transaction() as session:
        settings = get_settings(session)
        days = last_days(session, now, ZoneInfo(settings.timezone))
        row = session.get(SalesforceConnection, 1)
        stored = None
        if row is not None:
            stored = {
                "auth": row.auth,
                "login_url": row.login_url,
                "client_id": row.client_id,
                "username": row.username,
                "api_version": row.api_version,
                "ca_bundle": row.ca_bundle,
                "updated_at": row.updated_at,
            }
    stored_secrets = _stored_secret_names(ctx) if stored else set()
    key = (
        settings.push_field(),
        settings.sync_enabled,
        settings.live_pull,
        stored["updated_at"] if stored else None,
    )
    checked = check_cache(request).get(ctx, key)
    checks = [_page_check(c) for c in checked.checks]
    unlinked, unlinked_total = _unlinked_unsubscribed(ctx)
    runs = history(ctx.db, 20)
    env = sorted(env_overrides(ctx.settings)) if _env_set(ctx) else []
    return render(
        request,
        "admin/integrations_tab.html",
        title="Integrations",
        crumbs=CRUMBS,
        status=status,
        tab="integrations",
        health=health_banner(ctx),
        settings=settings,
        values=values or settings.as_dict(),
        errors=errors or {},
        zones=COMMON_ZONES,
        next_run=_next_run_text(settings, now),
        checks=checks,
        checked_at=checked.at,
        checked_minutes=int((now - checked.at).total_seconds() // 60),
        unlinked=unlinked,
        unlinked_total=unlinked_total,
        runs=runs,
        tz=settings.timezone,
        chart=Markup(activity_svg(days, title="Unsubscribes and pushes, last 30 days")),  # noqa: S704 (built from escaped parts)
        legend=legend(days),
        days=days,
        chart_sources=sources_in(days),
        stored=stored,
        stored_secrets=stored_secrets,
        env=env,
        conn=conn_values
        or (stored or {"auth": "client_credentials", "api_version": DEFAULT_API_VERSION}),
        conn_errors=conn_errors or {},
        conn_result=conn_result,
        stored_result=stored_result,
        auth_labels=AUTH_LABELS,
        live_pull_choices=LIVE_PULL_LABELS,
        live_state=live_state_lines(ctx, now),
        notify=notify or notifications_section(ctx),
    )


def notifications_section(ctx: Context) -> dict[str, Any]:
    from optsync.web.admin.notifications import section  # it imports this module

    return section(ctx)


def _env_set(ctx: Context) -> bool:
    try:
        return bool(env_overrides(ctx.settings))
    except OptsyncError:
        return True


def _stored_secret_names(ctx: Context) -> set[str]:
    try:
        with ctx.db.transaction() as session:
            config = load_connection(session, ctx.settings.resolved_secret_key)
    except OptsyncError:
        return set()
    if config is None:
        return set()
    return {name for name in ("client_secret", "password", "private_key") if getattr(config, name)}


# -- sync settings ----------------------------------------------------------------------


def _settings_changes(form: FormData) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "sync_enabled": form.get("sync_enabled") in ("on", "true", "1"),
        "field": str(form.get("field") or ""),
        "sales_opt_out_field": str(form.get("sales_opt_out_field") or "").strip(),
        "schedule": " ".join(str(form.get("schedule") or "").split()),
        "timezone": str(form.get("timezone") or "").strip(),
    }
    # the live-pull controls: a form without them (an older page) keeps the stored values
    if "live_pull" in form:
        changes["live_pull"] = str(form.get("live_pull") or "")
    if "poll_interval_s" in form:
        changes["poll_interval_s"] = _whole_number(form.get("poll_interval_s"))
    return changes


def _whole_number(value: Any) -> Any:
    """An integer from a form field, or the text as typed (validation names it)."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() else text


def field_errors(current: SyncSettingsView, changes: dict[str, Any]) -> dict[str, str]:
    """Each field checked on its own, so every mistake is shown at once."""
    errors: dict[str, str] = {}
    for key, value in changes.items():
        try:
            validate_changes(current, {key: value})
        except UsageError as exc:
            errors[key] = field_message(key, exc.message, with_label=False)
    return errors


@router.post(f"{BASE}/integrations/settings", response_class=HTMLResponse)
async def save_settings(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    changes = _settings_changes(form)

    def work() -> dict[str, str]:
        with ctx.db.transaction() as session:
            errors = field_errors(get_settings(session), changes)
            if not errors:
                update_settings(session, changes, actor=user.actor, now=ctx.clock())
            return errors

    errors = await run_in_threadpool(work)
    if errors:
        return await run_in_threadpool(
            lambda: render_tab(request, ctx, values=changes, errors=errors, status=422)
        )
    check_cache(request).clear()
    flash(request, "Settings saved.")
    return redirect(TAB + "#sync-settings")


# -- Salesforce connection --------------------------------------------------------------


async def _private_key(form: FormData) -> str | None:
    """The PEM from the upload, else ``None``. There is no server-path field: a path
    typed into a web form would let an admin probe the server's files."""
    upload = form.get("private_key_file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_PEM + 1)
        if len(data) > MAX_PEM:
            raise UsageError("The file is too large for a PEM key.", field="private_key")
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise UsageError("The file is not a PEM text file.", field="private_key") from None
    return None


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    return text or None


def _connection_values(form: FormData) -> dict[str, Any]:
    """What the form showed, to re-show it after an error (never the secrets)."""
    return {
        name: _text(form, name) or ""
        for name in (
            "auth",
            "login_url",
            "client_id",
            "username",
            "api_version",
            "ca_bundle",
        )
    }


async def _config_from(form: FormData, ctx: Context) -> ConnectionConfig:
    """The submitted connection; secrets left empty keep the stored ones while the auth
    kind, login URL, username and CA bundle are unchanged (``with_stored_secrets``)."""
    auth = _text(form, "auth") or ""
    with ctx.db.transaction() as session:
        try:
            stored = load_connection(session, ctx.settings.resolved_secret_key)
        except OptsyncError:
            stored = None
    config = ConnectionConfig(
        auth=auth,
        login_url=_text(form, "login_url") or "",
        client_id=_text(form, "client_id"),
        client_secret=_text(form, "client_secret"),
        username=_text(form, "username"),
        password=_text(form, "password"),
        private_key=await _private_key(form),
        api_version=_text(form, "api_version") or DEFAULT_API_VERSION,
        ca_bundle=_text(form, "ca_bundle"),
    )
    return with_stored_secrets(config, stored).validated()


@router.post(f"{BASE}/integrations/connection", response_class=HTMLResponse)
async def save_salesforce_connection(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    action = str(form.get("action") or "save")
    try:
        config = await _config_from(form, ctx)
        if action == "test":
            ok, message = await run_in_threadpool(try_connection, config)
            result = (ok, "Tested only, not saved. " + message)
            return await run_in_threadpool(
                lambda: render_tab(
                    request, ctx, conn_values=_connection_values(form), conn_result=result
                )
            )
        # the same save as `optsync salesforce connect`: tested first, stored only if it works
        saved = await run_in_threadpool(lambda: save_tested(ctx, config))
    except UsageError as exc:
        field = exc.field or "auth"
        errors = {field: field_message(field, exc.message, with_label=False)}
        return await run_in_threadpool(
            lambda: render_tab(
                request, ctx, conn_values=_connection_values(form), conn_errors=errors, status=422
            )
        )
    assert saved.test is not None
    check_cache(request).clear()
    flash(request, "Connection saved. " + saved.test.message)
    return redirect(TAB + "#connection")


@router.post(f"{BASE}/integrations/connection/test", response_class=HTMLResponse)
async def test_stored_connection(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    result = await run_in_threadpool(try_in_force, ctx)
    return await run_in_threadpool(
        lambda: render_tab(request, ctx, stored_result=(result.ok, result.message))
    )


@router.post(f"{BASE}/integrations/checks", response_class=HTMLResponse)
async def recheck(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """Run the setup checks now (the tab otherwise shows them cached, with their age)."""
    check_cache(request).clear()
    flash(request, "Checked again just now.")
    return redirect(TAB + "#checks")


@router.get(f"{BASE}/integrations/connection/delete", response_class=HTMLResponse)
def confirm_disconnect(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """Disconnect deletes the stored secrets: a page of its own asks first."""
    with ctx.db.transaction() as session:
        row = session.get(SalesforceConnection, 1)
        login_url = row.login_url if row is not None else None
    if login_url is None:
        flash(request, "There is no stored connection.")
        return redirect(TAB + "#connection")
    return render(
        request,
        "admin/confirm.html",
        title="Disconnect Salesforce?",
        crumbs=[*CRUMBS[:-1], ("Integrations", TAB), ("Disconnect", None)],
        question="Disconnect from Salesforce?",
        warning=(
            f"This deletes the stored connection to {login_url} and its secrets. Pushes wait "
            "until a connection is saved again; you will have to enter the secrets again."
        ),
        action=f"{BASE}/integrations/connection/delete",
        fields={},
        button="Disconnect and delete the secrets",
        cancel=TAB + "#connection",
    )


@router.post(f"{BASE}/integrations/connection/delete", response_class=HTMLResponse)
async def disconnect(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    def work() -> bool:
        with ctx.db.transaction() as session:
            return delete_connection(session)

    deleted = await run_in_threadpool(work)
    check_cache(request).clear()
    if deleted:
        flash(
            request,
            "Disconnected: the stored connection and its secrets are deleted. "
            "Pushes wait until a connection exists again.",
            "warn",
        )
    else:
        flash(request, "There was no stored connection.")
    return redirect(TAB + "#connection")
