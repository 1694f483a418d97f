"""``/settings``: where the gear icon leads; lists what this user may open."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from optsync.web.admin.auth import SignedInUser, require_user, verify_csrf
from optsync.web.admin.templating import redirect, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])


@router.get("/settings", response_class=HTMLResponse)
def settings_home(request: Request, user: SignedInUser = Depends(require_user)) -> Response:
    return render(request, "admin/settings.html", title="Settings", crumbs=[("Settings", None)])


@router.get("/settings/admin")
def admin_settings(user: SignedInUser = Depends(require_user)) -> Response:
    return redirect("/settings#admin-settings")
