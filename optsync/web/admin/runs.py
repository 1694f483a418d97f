"""Sync now, Dry run, and a run's page: live progress while it runs (the page refreshes
itself every 2 seconds with ``<meta http-equiv="refresh">``, no JavaScript), then the
report."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from optsync.bootstrap import Context
from optsync.errors import NotFoundError
from optsync.services.sync.report import PREVIEW_CSV_PATH
from optsync.services.sync.report import preview_csv as preview_lines
from optsync.services.sync_launcher import SyncLauncher
from optsync.services.sync_run import PHASES, RunInProgress, get_report
from optsync.services.sync_settings import get_settings
from optsync.store import runs as runs_store
from optsync.store.models import Person
from optsync.web.admin.auth import PageError, SignedInUser, require_admin, verify_csrf
from optsync.web.admin.templating import TEMPLATES, RecordId, flash, redirect, render
from optsync.web.deps import get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = "/settings/admin/unsubscribes"
REFRESH_SECONDS = 2


def run_links(report: dict[str, Any]) -> dict[str, Any]:
    """Where a run's counts lead: the records behind them, as the Unsubscribes tab's
    filtered list or the Failures view (``pulled``: the persons this run unsubscribed
    here, ``pulled_by_run``; ``pushed``: the persons whose records it set,
    ``pushed_by_run``; ``not_linked``: the Failures view's *Not in Salesforce*, the
    unsubscribes still waiting for a record now; ``failed``:
    the Failures view at each code). A running or dry run links nothing: its numbers are
    not final or changed nothing. A zero links nothing either."""
    if report.get("status") == "running" or report.get("dry_run"):
        return {"pulled": None, "pushed": None, "not_linked": None, "failed": {}}

    def listed(name: str, count: Any) -> str | None:
        if not count or not report.get("id"):
            return None
        return f"{BASE}?" + urlencode({"tab": "unsubscribes", name: str(report["id"])})

    # *Not in Salesforce*: the addresses no record carries (runs before issue 16 counted
    # the persons without a linked record, then the same thing)
    waiting = report.get("not_in_salesforce") if report.get("mirror") else report.get("not_linked")
    not_linked = f"{BASE}/failures#unlinked-h" if waiting else None
    failed = {code: f"{BASE}/failures#code-{code}" for code in report.get("failed") or {}}
    return {
        "pulled": listed("pulled_by_run", report.get("pulled")),
        "pushed": listed("pushed_by_run", report.get("pushed")),
        "not_linked": not_linked,
        "failed": failed,
    }


TEMPLATES.env.globals["run_links"] = run_links


def launcher_of(request: Request) -> SyncLauncher:
    launcher: SyncLauncher = request.app.state.sync_launcher
    return launcher


@router.post(f"{BASE}/runs", response_class=HTMLResponse)
async def start(
    request: Request,
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    dry_run = form.get("mode") == "dry_run"
    try:
        run_id = await run_in_threadpool(lambda: launcher_of(request).start(dry_run=dry_run))
    except RunInProgress as exc:
        flash(request, "A sync run is already in progress; it is shown below.", "warn")
        if exc.run_id is not None:
            return redirect(f"{BASE}/runs/{exc.run_id}")
        return redirect(f"{BASE}?tab=integrations#runs")
    return redirect(f"{BASE}/runs/{run_id}")


@router.post(BASE + "/runs/{run_id}/real", response_class=HTMLResponse)
async def run_for_real(
    request: Request,
    run_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """ "Run it for real" on a dry run's page: a real manual run with the same options —
    the same field; if the field setting changed since, the dry run no longer says what
    the run would do, so it asks for a new dry run instead."""
    try:
        report = await run_in_threadpool(get_report, ctx.db, run_id)
    except NotFoundError:
        raise PageError(404, "No such run", f"There is no sync run #{run_id}.") from None
    if not report["dry_run"] or report["status"] != "succeeded":
        flash(request, "Only a dry run that succeeded can be run for real.", "warn")
        return redirect(f"{BASE}/runs/{run_id}")

    def current_field() -> str:
        with ctx.db.transaction() as session:
            return get_settings(session).salesforce_field

    field = await run_in_threadpool(current_field)
    if field != report["field"]:
        flash(
            request,
            f"The synced field changed since this dry run ({report['field']} → {field}); "
            "start a new dry run to see what a run would do now.",
            "warn",
        )
        return redirect(f"{BASE}/runs/{run_id}")
    try:
        new_id = await run_in_threadpool(lambda: launcher_of(request).start(dry_run=False))
    except RunInProgress as exc:
        flash(request, "A sync run is already in progress; it is shown below.", "warn")
        return redirect(f"{BASE}/runs/{exc.run_id}" if exc.run_id else f"{BASE}/runs/{run_id}")
    return redirect(f"{BASE}/runs/{new_id}")


@router.get(PREVIEW_CSV_PATH)
def preview_csv(
    run_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """Every record a dry run would pull and push (stored at the run, not recomputed)."""
    with ctx.db.transaction() as session:
        run = runs_store.get_run(session, run_id)
        if run is None:
            raise PageError(404, "No such run", f"There is no sync run #{run_id}.")
        lines = list(preview_lines(session, run_id, run.field))
    return Response(
        "".join(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dry-run-{run_id}.csv"'},
    )


@router.get(BASE + "/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    try:
        report = get_report(ctx.db, run_id)
    except NotFoundError:
        raise PageError(404, "No such run", f"There is no sync run #{run_id}.") from None
    person_ids = {f["person_id"] for f in report.get("failures") or [] if f.get("person_id")}
    with ctx.db.transaction() as session:
        tz = get_settings(session).timezone
        # persons by address on the page (members and admins may see them; logs may not)
        emails = dict(
            session.execute(select(Person.id, Person.email).where(Person.id.in_(person_ids))).all()
        )
    running = report["status"] == "running"
    kind = "Dry run" if report["dry_run"] else "Sync run"
    return render(
        request,
        "admin/run.html",
        title=f"{kind} #{run_id}",
        crumbs=[
            ("Settings", "/settings"),
            ("Admin Settings", "/settings#admin-settings"),
            ("Unsubscribes", BASE),
            ("Integrations", f"{BASE}?tab=integrations"),
            (f"{kind} #{run_id}", None),
        ],
        report=report,
        kind=kind,
        running=running,
        refresh=REFRESH_SECONDS if running else None,
        progress=launcher_of(request).progress(run_id) if running else None,
        phases=PHASES,
        tz=tz,
        emails=emails,
        # the header works in every browser; the template also carries the meta tag
        headers={"Refresh": str(REFRESH_SECONDS)} if running else None,
    )
