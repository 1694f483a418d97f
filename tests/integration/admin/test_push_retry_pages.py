"""Retry failed pushes from the admin pages and the API (issue 12.2)."""

from __future__ import annotations

from sqlalchemy import select, update

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import OutboxPush
from tests.integration.admin.conftest import csrf_of


def failed_person(ctx, n: int, code: str = "INVALID_FIELD_FOR_INSERT_UPDATE") -> int:
    email = f"f{n}@example.com"
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(n, email, make_id("003", n), "Contact"), ctx.clock())
        pid = unsubscribe_email(s, email, source=Source.API, actor="t", now=ctx.clock()).person.id
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == pid)
            .values(state="failed", last_error_code=code, fix="Make the field updateable.")
        )
    return pid


def states(ctx) -> list[str]:
    with ctx.db.transaction() as s:
        return list(s.scalars(select(OutboxPush.state).order_by(OutboxPush.person_id)))


def test_unsubscribes_tab_lists_failures_by_code_with_a_retry_button(admin_client, ctx):
    failed_person(ctx, 1)
    failed_person(ctx, 2)
    failed_person(ctx, 3, code="ENTITY_IS_DELETED")
    page = admin_client.get("/settings/admin/unsubscribes").text
    assert "Failed pushes" in page and "Make the field updateable." in page
    assert page.count('action="/settings/admin/unsubscribes/pushes/retry"') == 2
    token = csrf_of(admin_client, "/settings/admin/unsubscribes")
    r = admin_client.post(
        "/settings/admin/unsubscribes/pushes/retry",
        data={"code": "INVALID_FIELD_FOR_INSERT_UPDATE", "csrf_token": token},
    )
    assert r.status_code == 303
    assert states(ctx) == ["pending", "pending", "failed"]
    page = admin_client.get("/settings/admin/unsubscribes").text
    assert "2 failed pushes with INVALID_FIELD_FOR_INSERT_UPDATE queued again" in page


def test_person_page_retries_one_push_and_members_cannot(admin_client, member_client, ctx):
    pid = failed_person(ctx, 1)
    path = f"/settings/admin/unsubscribes/persons/{pid}"
    assert "Retry the push" in admin_client.get(path).text
    assert "Retry the push" not in member_client.get(path).text
    r = member_client.post(f"{path}/retry", data={"csrf_token": csrf_of(member_client, path)})
    assert r.status_code == 403 and states(ctx) == ["failed"]
    r = admin_client.post(f"{path}/retry", data={"csrf_token": csrf_of(admin_client, path)})
    assert r.status_code == 303 and states(ctx) == ["pending"]
    r = admin_client.post(f"{path}/retry", data={})  # no CSRF token
    assert r.status_code == 403
