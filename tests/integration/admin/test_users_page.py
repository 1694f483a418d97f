"""Settings → Admin Settings → Users and tokens (#13 item 1): admins only, CSRF on every
form, confirmations, the last admin kept, sessions and tokens taken away at once, the
audit log shown and downloadable."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from optsync.services import accounts
from optsync.store.models import AdminAuditEntry, ApiToken, User
from tests.integration.admin.conftest import ADMIN, MEMBER, csrf_of, new_client, post_form, sign_in

PAGE = "/settings/admin/users"


def _id(ctx, email: str) -> int:
    with ctx.db.transaction() as s:
        return s.scalars(select(User.id).where(User.email == email)).one()


def _token(ctx, name: str, *, admin: bool = False) -> str:
    with ctx.db.transaction() as s:
        return accounts.create_token(s, name, is_admin=admin, now=ctx.clock())


def test_the_page_lists_users_and_tokens_never_the_secret(admin_client, ctx):
    token = _token(ctx, "mailer")
    home = admin_client.get("/settings")
    assert f'href="{PAGE}"' in home.text and "Users and tokens" in home.text
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    for text in (ADMIN[0], MEMBER[0], "mailer", token[:8]):
        assert text in page.text
    assert token[8:] not in page.text and "argon2" not in page.text


@pytest.mark.parametrize(
    "path",
    [
        PAGE,
        f"{PAGE}/1/remove",
        f"{PAGE}/1/role?to=member",
        f"{PAGE}/1/reset-password",
        f"{PAGE}/audit.csv",
        "/settings/admin/tokens/1/revoke",
    ],
)
def test_members_and_anonymous_are_refused(member_client, app, path):
    assert member_client.get(path).status_code == 403
    with new_client(app) as anonymous:
        r = anonymous.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_member_posts_are_refused_and_nothing_changes(member_client, ctx):
    admin_id = _id(ctx, ADMIN[0])
    r = post_form(member_client, f"{PAGE}/{admin_id}/remove", {})
    assert r.status_code == 403
    assert _id(ctx, ADMIN[0]) == admin_id


def test_every_form_needs_the_csrf_token(admin_client, ctx):
    member_id = _id(ctx, MEMBER[0])
    for path, data in [
        (f"{PAGE}/{member_id}/remove", {}),
        (f"{PAGE}/{member_id}/role", {"role": "admin"}),
        (f"{PAGE}/{member_id}/reset-password", {}),
    ]:
        r = admin_client.post(path, data={**data, "csrf_token": "forged"})
        assert r.status_code == 403, path
    with ctx.db.transaction() as s:
        member = s.get(User, member_id)
        assert member is not None and not member.is_admin


def test_remove_a_user_confirms_then_ends_their_session(app, admin_client, ctx):
    member_id = _id(ctx, MEMBER[0])
    with new_client(app) as member:
        sign_in(member, MEMBER)
        assert member.get("/settings").status_code == 200
        confirm = admin_client.get(f"{PAGE}/{member_id}/remove")
        assert confirm.status_code == 200
        assert f"Remove {MEMBER[0]}?" in confirm.text
        assert f'action="{PAGE}/{member_id}/remove"' in confirm.text
        assert _id(ctx, MEMBER[0]) == member_id  # the GET changed nothing
        r = post_form(
            admin_client, f"{PAGE}/{member_id}/remove", {}, page=f"{PAGE}/{member_id}/remove"
        )
        assert r.status_code == 303 and r.headers["location"] == PAGE
        listing = admin_client.get(PAGE)
        assert (
            "The user was removed" in listing.text
            and MEMBER[0] not in listing.text.split("Audit log")[0]
        )
        # the removed user's session ends at its next request
        r = member.get("/settings")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_recreated_user_does_not_inherit_an_old_session(app, ctx, users):
    with new_client(app) as member:
        sign_in(member, MEMBER)
        with ctx.db.transaction() as s:
            accounts.remove_user(s, MEMBER[0], actor="t", now=ctx.clock())
            # same address, possibly the same (reused) id on SQLite
            accounts.add_user(s, MEMBER[0], "another password 1", is_admin=True, now=ctx.clock())
        assert member.get("/settings").status_code == 303


def test_the_last_admin_is_refused(admin_client, ctx):
    admin_id = _id(ctx, ADMIN[0])
    r = post_form(admin_client, f"{PAGE}/{admin_id}/remove", {})
    assert r.status_code == 409 and "last admin" in r.text
    r = post_form(admin_client, f"{PAGE}/{admin_id}/role", {"role": "member"})
    assert r.status_code == 409 and "last admin" in r.text
    with ctx.db.transaction() as s:
        assert s.get(User, admin_id).is_admin
    assert admin_client.get(PAGE).status_code == 200


def test_role_change_confirms_and_is_audited(admin_client, ctx):
    member_id = _id(ctx, MEMBER[0])
    page = admin_client.get(f"{PAGE}/{member_id}/role?to=admin")
    assert page.status_code == 200 and f"Make {MEMBER[0]} an admin?" in page.text
    r = post_form(admin_client, f"{PAGE}/{member_id}/role", {"role": "admin"})
    assert r.status_code == 303
    with ctx.db.transaction() as s:
        assert s.get(User, member_id).is_admin
        entry = s.scalars(select(AdminAuditEntry).order_by(AdminAuditEntry.id.desc())).first()
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        f"user:{ADMIN[0]}",
        "user.set-role",
        MEMBER[0],
        "admin",
    )
    assert admin_client.get(f"{PAGE}/{member_id}/role?to=boss").status_code == 404


def test_reset_password_shows_a_new_one_once_and_ends_sessions(app, admin_client, ctx):
    member_id = _id(ctx, MEMBER[0])
    with new_client(app) as member:
        sign_in(member, MEMBER)
        r = post_form(admin_client, f"{PAGE}/{member_id}/reset-password", {})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        password = re.search(r'<code id="new-password">([^<]+)</code>', r.text).group(1)
        assert member.get("/settings").status_code == 303
    with new_client(app) as again:
        sign_in(again, (MEMBER[0], password))
    with ctx.db.transaction() as s:
        details = s.scalars(select(AdminAuditEntry.detail)).all()
    assert password not in " ".join(d or "" for d in details)


def test_revoke_a_token_confirms_and_it_answers_401_at_once(app, admin_client, ctx):
    token = _token(ctx, "mailer")
    headers = {"Authorization": f"Bearer {token}"}
    with new_client(app) as api:
        assert api.get("/api/v1/settings/unsubscribe-sync", headers=headers).status_code == 200
        with ctx.db.transaction() as s:
            token_id = s.scalars(select(ApiToken.id)).one()
        confirm = admin_client.get(f"/settings/admin/tokens/{token_id}/revoke")
        assert confirm.status_code == 200 and "Revoke the token &#39;mailer&#39;?" in confirm.text
        assert api.get("/api/v1/settings/unsubscribe-sync", headers=headers).status_code == 200
        r = post_form(admin_client, f"/settings/admin/tokens/{token_id}/revoke", {})
        assert r.status_code == 303
        assert api.get("/api/v1/settings/unsubscribe-sync", headers=headers).status_code == 401
    page = admin_client.get(PAGE)
    assert "revoked" in page.text and "The token was revoked" in page.text


@pytest.mark.parametrize("bad", ["abc", "0", "99999999999999999999999", "9223372036854775808"])
def test_bad_ids_are_404_pages(admin_client, bad):
    for path in (f"{PAGE}/{bad}/remove", f"/settings/admin/tokens/{bad}/revoke"):
        r = admin_client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_the_audit_log_is_shown_and_downloads_as_csv(admin_client, ctx):
    _token(ctx, "@SUM(1+1)")
    member_id = _id(ctx, MEMBER[0])
    post_form(admin_client, f"{PAGE}/{member_id}/remove", {})
    page = admin_client.get(PAGE)
    assert "user.remove" in page.text and "token.create" in page.text
    r = admin_client.get(f"{PAGE}/audit.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows][-2:] == ["token.create", "user.remove"]
    assert rows[-1]["actor"] == f"user:{ADMIN[0]}" and rows[-1]["target"] == MEMBER[0]
    assert rows[-2]["target"] == "'@SUM(1+1)"


def test_the_csrf_token_of_the_page_is_on_every_form(admin_client, ctx):
    member_id = _id(ctx, MEMBER[0])
    token = csrf_of(admin_client, PAGE)
    for path in (
        f"{PAGE}/{member_id}/remove",
        f"{PAGE}/{member_id}/reset-password",
        f"{PAGE}/{member_id}/role?to=admin",
    ):
        page = admin_client.get(path)
        assert f'name="csrf_token" value="{token}"' in page.text
