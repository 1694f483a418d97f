"""The admin web app: sign-in, Settings → Admin Settings → Unsubscribes (tabs
Unsubscribes, Failures and Integrations), sync runs, server-rendered with Jinja2.

``install_admin(app, ctx)`` is the one way in: ``create_app`` calls it last, and it adds
the session middleware, the HTML error pages and the routers. Nothing here is global, so
every app built (one per test database) has its own sessions; "Sync now" uses the
app's ``SyncLauncher``, the same one ``POST /api/v1/sync/runs`` uses.
"""

from __future__ import annotations

from fastapi import FastAPI

from optsync.bootstrap import Context
from optsync.services.sync_launcher import SyncLauncher
from optsync.web.admin import (
    failures,
    home,
    integrations,
    login,
    notifications,
    runs,
    unsubscribes,
    users,
)
from optsync.web.admin.auth import install_sessions
from optsync.web.admin.remote import CheckCache
from optsync.web.admin.templating import install_page_errors
from optsync.web.admin.throttle import VerificationGate


def install_admin(app: FastAPI, ctx: Context) -> None:
    """Add the admin pages to ``app`` (built by ``create_app`` from ``ctx``); a second
    call on the same app changes nothing."""
    if getattr(app.state, "admin_installed", False):
        return
    app.state.admin_installed = True
    if getattr(app.state, "sync_launcher", None) is None:  # shared with the JSON API
        app.state.sync_launcher = SyncLauncher(ctx)
    app.state.verification_gate = VerificationGate()  # this process's password checks
    app.state.check_cache = CheckCache()  # the Integrations tab's setup checks
    install_page_errors(app)
    for module in (login, home, unsubscribes, failures, integrations, notifications, runs, users):
        app.include_router(module.router)
    install_sessions(app, ctx)


__all__ = ["install_admin"]
