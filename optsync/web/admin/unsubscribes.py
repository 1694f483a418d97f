"""The Unsubscribes tab: search and page through unsubscribes, add one, open a person's
ledger, and (admins) remove an unsubscribe.

Removing is a re-subscribe, which never syncs: the confirmation page says that the
field must also be cleared in Salesforce, and asks Salesforce live whether it still is
set on this person's record, because otherwise the next sync opts the person out again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.bootstrap import Context
from optsync.domain.optout import Source
from optsync.errors import UsageError
from optsync.services.optouts import lock_person, parse_email, resubscribe_email, unsubscribe_email
from optsync.services.person_views import PersonView, find_by_id, pushes_of
from optsync.services.push_retry import failures_by_code, retry_pushes
from optsync.services.sync_settings import SyncSettingsView, get_settings
from optsync.services.transactions import in_transaction
from optsync.services.unsubscribe_list import (
    FILTER_NAMES,
    OBJECTS,
    STATES,
    ListQuery,
    Page,
    count,
    csv_export,
    parse_query,
    read_page,
)
from optsync.store.models import LedgerEntry
from optsync.web.admin import integrations
from optsync.web.admin.auth import PageError, SignedInUser, require_admin, require_user, verify_csrf
from optsync.web.admin.health_banner import health_banner
from optsync.web.admin.remote import field_state, record_base, record_url
from optsync.web.admin.templating import (
    Crumb,
    RecordId,
    field_message,
    flash,
    redirect,
    render,
)
from optsync.web.deps import evidence_of, get_context

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

BASE = "/settings/admin/unsubscribes"
MAX_REASON = 1000
CRUMBS: list[Crumb] = [("Settings", "/settings"), ("Admin Settings", "/settings#admin-settings")]


def tab_crumbs(tab: str) -> list[Crumb]:
    return [*CRUMBS, ("Unsubscribes", BASE), (tab, None)]


def _clean_reason(value: object) -> str:
    text = str(value or "").strip()
    if any(ord(ch) < 32 and ch not in "\t" for ch in text):
        raise UsageError("reason: use plain text on one line.", field="reason")
    if len(text) > MAX_REASON:
        raise UsageError(f"reason: keep it under {MAX_REASON} characters.", field="reason")
    return text


PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_SIZE = 50


@dataclass(frozen=True)
class Listing:
    """What the tab shows of the list: the query as given (for the form and links), the
    page, how many match, and the error naming a bad filter (then no rows)."""

    values: dict[str, str]
    size: int
    query: ListQuery | None = None
    page: Page | None = None
    total: int = 0
    error: str | None = None
    error_field: str | None = None

    def link(self, **changes: str) -> str:
        """This list's URL with changes (a new filter or sort starts at the first page)."""
        params = self.query.params(**changes) if self.query else {}
        if self.size != DEFAULT_SIZE:
            params["size"] = str(self.size)
        return f"{BASE}?{urlencode({'tab': 'unsubscribes', **params})}"

    def without(self, name: str) -> str:
        """This list's URL without the filter ``name``, at the first page (the values as
        given: a bad value can be removed too)."""
        params = {k: v for k, v in self.values.items() if v and k not in (name, "tab", "cursor")}
        return f"{BASE}?{urlencode({'tab': 'unsubscribes', **params})}"

    def export_link(self) -> str:
        params = self.query.params() if self.query else {}
        return f"{BASE}/export.csv" + (f"?{urlencode(params)}" if params else "")


LIST_PARAMS = ("tab", *FILTER_NAMES, "sort", "size", "cursor")


def _one_values(request: Request) -> dict[str, str]:
    """The query's values; a filter given twice, or a name the list does not know (such
    as the ``page`` numbers of old links: pages are cursor links now), is an error of its
    own, not a guess."""
    params = request.query_params
    for name in params:
        if name == "page":
            raise UsageError(
                "page: this list has no page numbers; follow its Next and Previous links.",
                field="page",
            )
        if name not in LIST_PARAMS:
            raise UsageError(
                f"{name[:40]}: not a filter of this list (use {', '.join(LIST_PARAMS[1:])}).",
                field=name[:40],
            )
        if len(params.getlist(name)) > 1:
            raise UsageError(f"{name}: give it once.", field=name)
    return {name: params[name] for name in params}


def _size(value: str) -> int:
    if not value:
        return DEFAULT_SIZE
    if value not in {str(n) for n in PAGE_SIZES}:
        raise UsageError(
            f"size: show {', '.join(str(n) for n in PAGE_SIZES)} per page.", field="size"
        )
    return int(value)


def _list_query(session: Session, ctx: Context, values: dict[str, str]) -> ListQuery:
    return parse_query(
        values, tz=get_settings(session).timezone, secret_key=ctx.settings.resolved_secret_key
    )


@router.get(BASE, response_class=HTMLResponse)
def unsubscribes(
    request: Request,
    tab: str = "unsubscribes",
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_user),
) -> Response:
    if tab == "integrations":
        require_admin(request)
        return integrations.render_tab(request, ctx)
    if tab != "unsubscribes":
        raise PageError(
            404, "No such tab", "This page has two tabs: Unsubscribes and Integrations."
        )
    return unsubscribes_tab(request, ctx)


def _listing(session: Session, ctx: Context, request: Request) -> Listing:
    try:
        values = _one_values(request)
    except UsageError as exc:
        return Listing(
            {}, DEFAULT_SIZE, error=field_message(exc.field, exc.message), error_field=exc.field
        )
    try:
        size = _size(values.get("size", ""))
        query = _list_query(session, ctx, values)
    except UsageError as exc:
        return Listing(
            values,
            DEFAULT_SIZE,
            error=field_message(exc.field, exc.message),
            error_field=exc.field,
        )
    page = read_page(session, query, size, secret_key=ctx.settings.resolved_secret_key)
    return Listing(values, size, query=query, page=page, total=count(session, query))


def unsubscribes_tab(
    request: Request,
    ctx: Context,
    *,
    add_email: str = "",
    add_reason: str = "",
    add_error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with ctx.db.transaction() as session:
        listing = _listing(session, ctx, request)
        tz = get_settings(session).timezone
        push_failures = failures_by_code(session)
    if listing.error and status == 200:
        status = 400
    return render(
        request,
        "admin/unsubscribes_tab.html",
        push_failures=push_failures,
        health=health_banner(ctx),
        title="Unsubscribes",
        crumbs=tab_crumbs("Unsubscribes tab"),
        status=status,
        tab="unsubscribes",
        listing=listing,
        page_sizes=PAGE_SIZES,
        states=STATES,
        objects=OBJECTS,
        sorts=SORT_LABELS,
        tz=tz,
        add_email=add_email,
        add_reason=add_reason,
        add_error=add_error,
    )


SORT_LABELS = {
    "newest": "Newest unsubscribe first",
    "oldest": "Oldest unsubscribe first",
    "email": "Address A to Z",
    "email_desc": "Address Z to A",
}


@router.get(f"{BASE}/export.csv", response_model=None)
def export_unsubscribes(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_user),
) -> Response:
    """The filtered list as CSV: every matching row (not just a page), streamed."""
    try:
        values = _one_values(request)
        _size(values.get("size", ""))  # not used by the export, but checked like the tab's
        with ctx.db.transaction() as session:
            query = _list_query(session, ctx, values)
    except UsageError:
        return unsubscribes_tab(request, ctx)  # the tab names the bad filter (400)
    return StreamingResponse(
        csv_export(ctx.db, query),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="optsync-unsubscribes.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.post(f"{BASE}/add", response_class=HTMLResponse)
async def add_unsubscribe(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_user),
) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()[:400]
    reason_raw = form.get("reason")
    evidence = evidence_of(request)

    def work(session: Session) -> tuple[int, bool]:
        result = unsubscribe_email(
            session,
            parse_email(email),
            source=Source.ADMIN,
            actor=user.actor,
            now=ctx.clock(),
            reason=_clean_reason(reason_raw) or None,
            evidence=evidence,
        )
        return result.person.id, result.changed

    try:
        person_id, changed = await run_in_threadpool(in_transaction, ctx.db, work)
    except UsageError as exc:
        message = field_message(exc.field or "email", exc.message)
        return await run_in_threadpool(
            lambda: unsubscribes_tab(
                request,
                ctx,
                add_email=email,
                add_reason=str(reason_raw or ""),
                add_error=message,
                status=422,
            )
        )
    if changed:
        flash(request, "This person is unsubscribed; the push to Salesforce is queued.")
    else:
        flash(request, "This person was already unsubscribed; nothing changed.")
    return redirect(f"{BASE}/persons/{person_id}")


def _person_or_404(
    ctx: Context, person_id: int
) -> tuple[PersonView, list[LedgerEntry], SyncSettingsView]:
    with ctx.db.transaction() as session:
        view = find_by_id(session, person_id)
        if view is None:
            raise PageError(404, "No such person", "There is no person at this address.")
        ledger = list(
            session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.person_id == person_id)
                .order_by(LedgerEntry.id.desc())
            )
        )
        for entry in ledger:
            session.expunge(entry)
        settings = get_settings(session)
    return view, ledger, settings


@router.get(BASE + "/persons/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_user),
) -> Response:
    view, ledger, settings = _person_or_404(ctx, person_id)
    with ctx.db.transaction() as session:
        all_pushes = pushes_of(session, person_id, limit=None)
    return render(
        request,
        "admin/person.html",
        title=view.email,
        crumbs=[*CRUMBS, ("Unsubscribes", BASE), (view.email, None)],
        person=view,
        ledger=ledger,
        all_pushes=all_pushes,
        tz=settings.timezone,
        field=settings.push_field(),
        record_base=record_base(ctx),
        record_url=record_url,
    )


def _again_page(request: Request, view: PersonView) -> HTMLResponse:
    return render(
        request,
        "admin/confirm.html",
        title=f"Unsubscribe {view.email} again?",
        crumbs=[
            *CRUMBS,
            ("Unsubscribes", BASE),
            (view.email, f"{BASE}/persons/{view.id}"),
            ("Unsubscribe again", None),
        ],
        question="Unsubscribe this person again?",
        warning=(
            f"{view.email} was re-subscribed. Unsubscribing again stops emails to them at "
            "once, records it in the ledger (source: admin) and pushes the opt-out to "
            "Salesforce."
        ),
        action=f"{BASE}/persons/{view.id}/unsubscribe",
        fields={},
        button="Unsubscribe again",
        cancel=f"{BASE}/persons/{view.id}",
    )


@router.get(BASE + "/persons/{person_id}/unsubscribe", response_class=HTMLResponse)
def unsubscribe_again_confirm(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """ "Unsubscribe again" after a re-subscribe asks on a page of its own first."""
    view, _ledger, _settings = _person_or_404(ctx, person_id)
    if view.unsubscribed:
        flash(request, "This person is already unsubscribed; nothing to do.")
        return redirect(f"{BASE}/persons/{person_id}")
    return _again_page(request, view)


@router.post(BASE + "/persons/{person_id}/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_again(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """The one write path (services.optouts → store.optouts), source admin."""
    evidence = evidence_of(request)

    def work(session: Session) -> bool:
        person = lock_person(session, person_id)
        if person is None:
            raise PageError(404, "No such person", "There is no person at this address.")
        result = unsubscribe_email(
            session,
            person.email,
            source=Source.ADMIN,
            actor=user.actor,
            now=ctx.clock(),
            reason="unsubscribed again by an admin",
            evidence=evidence,
        )
        return result.changed

    changed = await run_in_threadpool(in_transaction, ctx.db, work)
    flash(
        request,
        "Unsubscribed again; the push to Salesforce is queued."
        if changed
        else "This person was already unsubscribed; nothing changed.",
    )
    return redirect(f"{BASE}/persons/{person_id}")


def _remove_page(
    request: Request,
    ctx: Context,
    person_id: RecordId,
    *,
    reason: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    view, _ledger, settings = _person_or_404(ctx, person_id)
    field = settings.push_field()
    state = field_state(ctx, view.salesforce_id, view.salesforce_object, field)
    return render(
        request,
        "admin/remove.html",
        title=f"Remove the unsubscribe of {view.email}",
        crumbs=[
            *CRUMBS,
            ("Unsubscribes", BASE),
            (view.email, f"{BASE}/persons/{view.id}"),
            ("Remove", None),
        ],
        status=status,
        person=view,
        field=field,
        state=state,
        reason=reason,
        error=error,
    )


@router.get(BASE + "/persons/{person_id}/remove", response_class=HTMLResponse)
def remove_confirm(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    return _remove_page(request, ctx, person_id)


@router.post(BASE + "/persons/{person_id}/remove", response_class=HTMLResponse)
async def remove(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    form = await request.form()
    raw = str(form.get("reason") or "")
    evidence = evidence_of(request)

    def work(session: Session) -> tuple[str, bool]:
        person = lock_person(session, person_id)
        if person is None:
            raise PageError(404, "No such person", "There is no person at this address.")
        reason = _clean_reason(raw)
        if not reason:
            raise UsageError("reason: say why this person may be emailed again.", field="reason")
        result = resubscribe_email(
            session,
            person.email,
            source=Source.ADMIN,
            actor=user.actor,
            now=ctx.clock(),
            reason=reason,
            evidence=evidence,
        )
        return person.email, result.changed

    try:
        _email, changed = await run_in_threadpool(in_transaction, ctx.db, work)
    except UsageError as exc:
        message = field_message(exc.field, exc.message)
        return await run_in_threadpool(
            lambda: _remove_page(
                request, ctx, person_id, reason=raw[:MAX_REASON], error=message, status=422
            )
        )
    if changed:
        flash(
            request,
            "The unsubscribe of this person is removed here. Clear the field in "
            "Salesforce too, or the next sync opts this person out again.",
            "warn",
        )
    else:
        flash(request, "This person was not unsubscribed; nothing changed.")
    return redirect(f"{BASE}/persons/{person_id}")


@router.post(BASE + "/pushes/retry", response_class=HTMLResponse)
async def retry_failed_pushes(
    request: Request,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """Retry every failed push with one error code (the button beside each code)."""
    form = await request.form()
    code = str(form.get("code") or "")[:80]
    result = await run_in_threadpool(
        in_transaction,
        ctx.db,
        lambda session: retry_pushes(session, now=ctx.clock(), codes=[code]),
    )
    flash(
        request,
        f"{result.reopened} failed push{'es' if result.reopened != 1 else ''} with {code} "
        "queued again; the worker sends them now.",
    )
    return redirect(_back(form.get("return_to"), BASE))


def _back(choice: object, default: str) -> str:
    """Where a Retry button returns: the Failures view when it was pressed there (a fixed
    choice, never a URL from the form), else the page it belongs to."""
    return f"{BASE}/failures" if choice == "failures" else default


@router.post(BASE + "/persons/{person_id}/retry", response_class=HTMLResponse)
async def retry_person_push(
    request: Request,
    person_id: RecordId,
    ctx: Context = Depends(get_context),
    user: SignedInUser = Depends(require_admin),
) -> Response:
    """Retry this person's failed push (the button on the person page and the Failures
    view)."""
    form = await request.form()
    _person_or_404(ctx, person_id)
    result = await run_in_threadpool(
        in_transaction,
        ctx.db,
        lambda session: retry_pushes(session, now=ctx.clock(), person_ids=[person_id]),
    )
    flash(
        request,
        "The push was queued again; the worker sends it now."
        if result.reopened
        else "Nothing to retry: the latest push of this person has not failed.",
    )
    return redirect(_back(form.get("return_to"), f"{BASE}/persons/{person_id}"))
