"""The Failures view (Unsubscribes → Failures): failed pushes grouped by Salesforce error
code, each with its count, the fix and "Retry" for the group and per person, then the
*Not in Salesforce* unsubscribes (no record has the address) with the action that links
them.

Nothing here has a query or a retry of its own: the rows come from the one list query
builder (:mod:`optsync.services.unsubscribe_list`, the same filters as the tab and
``GET /api/v1/unsubscribes``), the groups from ``push_retry.failures_by_code``, and the
Retry buttons post to the tab's and person page's retry actions
(``services.push_retry.retry_pushes``), which come back here.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from optsync.bootstrap import Context
from optsync.errors import UsageError
from optsync.services.person_link import link_person
from optsync.services.person_views import find_by_id
from optsync.services.push_retry import failures_by_code
from optsync.services.sync_settings import get_settings
from optsync.services.transactions import in_transaction
from optsync.services.unsubscribe_list import ListQuery, count, read_page
from optsync.web.admin.auth import PageError, SignedInUser, require_admin, require_user, verify_csrf
from optsync.web.admin.templating import Crumb, RecordId, field_message, flash, redirect, render
from optsync.web.deps import get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = "/settings/admin/unsubscribes"
FAILURES = f"{BASE}/failures"
PER_GROUP = 10
"""Persons shown under each error code (the group's link lists them all)."""
CRUMBS: list[Crumb] = [
    ("Settings", "/settings"),
    ("Admin Settings", "/settings#admin-settings"),
    ("Unsubscribes", BASE),
]


@router.get(FAILURES, response_class=HTMLResponse)
def failures_page(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_user),
) -> Response:
    secret = ctx.settings.resolved_secret_key
    with ctx.db.transaction() as session:
        tz = get_settings(session).timezone
        groups = [
            (
                code,
                fix,
                n,
                read_page(
                    session, ListQuery(state="failed", code=code), PER_GROUP, secret_key=secret
                ).rows,
            )
            for code, fix, n in failures_by_code(session)
        ]
        unlinked_query = ListQuery(state="not_linked")
        unlinked = read_page(session, unlinked_query, PER_GROUP, secret_key=secret).rows
        unlinked_total = count(session, unlinked_query)
    return render(
        request,
        "admin/failures.html",
        title="Failures",
        crumbs=[*CRUMBS, ("Failures", None)],
        tab="failures",
        groups=groups,
        failed_total=sum(group[2] for group in groups),
        unlinked=unlinked,
        unlinked_total=unlinked_total,
        per_group=PER_GROUP,
        tz=tz,
    )


def _link_page(
    request: Request,
    ctx: Context,
    person_id: int,
    *,
    value: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with ctx.db.transaction() as session:
        view = find_by_id(session, person_id)
    if view is None:
        raise PageError(404, "No such person", "There is no person at this address.")
    return render(
        request,
        "admin/link.html",
        title=f"Link {view.email} to Salesforce",
        crumbs=[
            *CRUMBS,
            ("Failures", FAILURES),
            (view.email, f"{BASE}/persons/{view.id}"),
            ("Link", None),
        ],
        status=status,
        person=view,
        value=value,
        error=error,
    )


@router.get(BASE + "/persons/{person_id}/link", response_class=HTMLResponse)
def link_form(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    return _link_page(request, ctx, person_id)


@router.post(BASE + "/persons/{person_id}/link", response_class=HTMLResponse)
async def link(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    raw = str(form.get("salesforce_id") or "").strip()[:40]

    def work(session: Session) -> None:
        link_person(session, person_id, raw, ctx.clock())

    try:
        await run_in_threadpool(in_transaction, ctx.db, work)
    except UsageError as exc:
        if exc.field == "person_id":
            raise PageError(404, "No such person", "There is no person at this address.") from None
        message = field_message(exc.field, exc.message, with_label=False)
        return await run_in_threadpool(
            lambda: _link_page(request, ctx, person_id, value=raw, error=message, status=422)
        )
    flash(
        request, "Linked to the Salesforce record; the push is queued and the worker sends it now."
    )
    return redirect(f"{BASE}/persons/{person_id}")
