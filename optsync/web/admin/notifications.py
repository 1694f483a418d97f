"""The Integrations tab's Notifications section: where failed runs and stuck pushes are
announced (email over SMTP, a signed webhook), and "Send a test" with its answer beside
the button. Admins only; every save is audit-logged (``notifications.update``) and names
the settings changed, never a secret. Secrets are never sent back: the password input is
always empty (left empty, the stored one is kept) and a generated webhook secret is shown
once, on the page that answers the save (no redirect, so it never rides in a cookie)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from optsync.bootstrap import Context
from optsync.errors import UsageError
from optsync.services.notifications.dispatch import recent_events, send_test
from optsync.services.notifications.settings import (
    KEEP,
    SECURITY_CHOICES,
    get_notification_settings,
    update_notification_settings,
)
from optsync.web.admin import integrations
from optsync.web.admin.auth import SignedInUser, require_admin, verify_csrf
from optsync.web.admin.templating import field_message, flash, redirect
from optsync.web.deps import get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = integrations.BASE + "/integrations/notifications"
CHECKBOXES = ("email_enabled", "webhook_enabled", "notify_resolved")
TEXTS = ("smtp_host", "smtp_security", "smtp_username", "email_from", "email_to", "webhook_url")
NUMBERS = ("smtp_port", "webhook_timeout_s", "webhook_retries", "stuck_after_min")


def section(ctx: Context, **overrides: Any) -> dict[str, Any]:
    """What the section shows: the stored settings (or the form as typed), the last
    notifications, and any answer to a save or a test."""
    with ctx.db.transaction() as session:
        view = get_notification_settings(session, ctx.settings.resolved_secret_key)
        events = recent_events(session, 5)
    values = view.as_dict()
    values["email_to"] = ", ".join(view.email_to)
    data: dict[str, Any] = {
        "view": view,
        "values": values,
        "errors": {},
        "result": None,
        "secret": None,
        "events": events,
        "securities": SECURITY_CHOICES,
    }
    data.update(overrides)
    return data


def _changes(form: FormData) -> dict[str, Any]:
    changes: dict[str, Any] = {name: form.get(name) in ("on", "true", "1") for name in CHECKBOXES}
    for name in TEXTS:
        changes[name] = str(form.get(name) or "").strip()[:2100] or None
    for name in NUMBERS:
        changes[name] = integrations._whole_number(form.get(name))
    return changes


@router.post(BASE, response_class=HTMLResponse)
async def save(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    changes = _changes(form)
    password = str(form.get("smtp_password") or "")
    clear = form.get("clear_smtp_password") in ("on", "true", "1")
    rotate = form.get("new_webhook_secret") in ("on", "true", "1")

    def work() -> Any:
        with ctx.db.transaction() as session:
            return update_notification_settings(
                session,
                changes,
                secret_key=ctx.settings.resolved_secret_key,
                actor=user.actor,
                now=ctx.clock(),
                smtp_password=None if clear else (password or KEEP),
                new_webhook_secret=rotate,
            )

    try:
        saved = await run_in_threadpool(work)
    except UsageError as exc:
        field = exc.field or "email_enabled"
        shown = {**changes, "email_to": changes.get("email_to") or ""}
        notify = section(
            ctx,
            values={**section(ctx)["values"], **{k: v for k, v in shown.items() if v is not None}},
            errors={field: field_message(field, exc.message, with_label=False)},
        )
        return await run_in_threadpool(
            lambda: integrations.render_tab(request, ctx, notify=notify, status=422)
        )
    if saved.new_webhook_secret:
        notify = section(ctx, secret=saved.new_webhook_secret)
        return await run_in_threadpool(lambda: integrations.render_tab(request, ctx, notify=notify))
    flash(request, "Notification settings saved.")
    return redirect(integrations.TAB + "#notifications")


@router.post(BASE + "/test", response_class=HTMLResponse)
async def test(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    channel = str(form.get("channel") or "") or None
    if channel not in (None, "email", "webhook"):
        channel = None
    out = await run_in_threadpool(
        lambda: send_test(
            ctx.db,
            secret_key=ctx.settings.resolved_secret_key,
            base_url=ctx.settings.base_url,
            now=ctx.clock(),
            channel=channel,
        )
    )
    result = [(name, value == "sent", value) for name, value in out.items()]
    notify = section(ctx, result=result)
    return await run_in_threadpool(lambda: integrations.render_tab(request, ctx, notify=notify))
