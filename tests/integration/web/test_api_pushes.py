"""``POST /api/v1/pushes/retry`` (issue 12.2): admin token, strict body, filters."""

from __future__ import annotations

from sqlalchemy import select

from optsync.store.models import OutboxPush
from tests.integration.admin.test_push_retry_pages import failed_person


def states(ctx) -> list[str]:
    with ctx.db.transaction() as s:
        return list(s.scalars(select(OutboxPush.state).order_by(OutboxPush.person_id)))


def test_api_retry(client, ctx, admin_headers, member_headers):
    failed_person(ctx, 1)
    failed_person(ctx, 2, code="ENTITY_IS_DELETED")
    admin, member = admin_headers, member_headers
    url = "/api/v1/pushes/retry"
    assert client.post(url, json={"all_failed": True}).status_code == 401
    assert client.post(url, json={"all_failed": True}, headers=member).status_code == 403
    for bad in ({"all_failed": 1}, {"codes": ["A B"]}, {"codes": "X"}, {"nope": 1}):
        assert client.post(url, json=bad, headers=admin).status_code == 422, bad
    r = client.post(url, json={}, headers=admin)
    assert r.status_code == 422 and "--all-failed" in r.text
    r = client.post(url, json={"codes": ["ENTITY_IS_DELETED"]}, headers=admin)
    assert r.status_code == 200 and r.json() == {"reopened": 1, "still_failed": 1}
    assert sorted(states(ctx)) == ["failed", "pending"]
