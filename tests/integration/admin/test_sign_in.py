"""Sign-in, sessions, throttling, CSRF, roles and redirects of the admin pages."""

from __future__ import annotations

from sqlalchemy import func, select

from optsync.services.sync_settings import get_settings
from optsync.store.models import LoginAttempt
from optsync.web.admin import install_admin
from optsync.web.admin.auth import SESSION_COOKIE, safe_next
from optsync.web.app import create_app
from tests.integration.admin.conftest import (
    ADMIN,
    MEMBER,
    csrf_of,
    new_client,
    post_form,
    sign_in,
    visible,
)

ADMIN_ONLY_GET = [
    "/settings/admin/unsubscribes?tab=integrations",
    "/settings/admin/unsubscribes/persons/1/remove",
    "/settings/admin/unsubscribes/runs/1",
]
ADMIN_ONLY_POST = [
    "/settings/admin/unsubscribes/integrations/settings",
    "/settings/admin/unsubscribes/integrations/connection",
    "/settings/admin/unsubscribes/integrations/connection/test",
    "/settings/admin/unsubscribes/integrations/connection/delete",
    "/settings/admin/unsubscribes/runs",
    "/settings/admin/unsubscribes/persons/1/remove",
]
SIGNED_IN_GET = [
    "/settings",
    "/settings/admin/unsubscribes",
    "/settings/admin/unsubscribes?tab=unsubscribes",
    "/settings/admin/unsubscribes/persons/1",
]


def _login(client, email, password, token=None, next_path=""):
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": token if token is not None else csrf_of(client),
        },
    )


def test_sign_in_sets_a_hardened_session_cookie_and_goes_to_next(client, users):
    r = _login(client, *ADMIN, next_path="/settings/admin/unsubscribes?tab=integrations")
    assert r.status_code == 303
    assert r.headers["location"] == "/settings/admin/unsubscribes?tab=integrations"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(SESSION_COOKIE)
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    assert "max-age=43200" in cookie
    page = client.get("/settings")
    assert page.status_code == 200
    assert 'aria-label="Settings"' in page.text and ADMIN[0] in visible(page.text)


def test_wrong_password_and_unknown_address_get_the_same_answer(client, users):
    wrong = _login(client, ADMIN[0], "not the password")
    unknown = _login(client, "nobody@example.com", "whatever password")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "The email address or the password is wrong." in r.text
        assert "set-cookie" not in r.headers or "uid" not in r.headers["set-cookie"]
    assert client.get("/settings").status_code == 303


def test_five_failures_lock_the_address_and_ip_out_across_processes(ctx, app, users, clock):
    with new_client(app) as c:
        for _ in range(4):
            assert _login(c, ADMIN[0], "wrong password!").status_code == 401
        fifth = _login(c, ADMIN[0], "wrong password!")
        assert fifth.status_code == 429
        assert int(fifth.headers["retry-after"]) > 800
        assert "Try again after" in fifth.text
    # another web process (another app on the same database) sees the same lockout,
    # even with the right password
    other = create_app(ctx)
    install_admin(other, ctx)
    with new_client(other) as c:
        assert _login(c, *ADMIN).status_code == 429
        # a different address from the same IP is not locked out
        assert _login(c, *MEMBER).status_code == 303
    with ctx.db.transaction() as s:
        keys = s.scalars(select(LoginAttempt.key_hash)).all()
    assert keys and all(ADMIN[0] not in k and len(k) == 64 for k in keys)
    clock.advance(minutes=16)
    with new_client(app) as c:
        assert _login(c, *ADMIN).status_code == 303
    with ctx.db.transaction() as s:  # success forgets the failures
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 0


def test_the_session_ends_after_twelve_hours(admin_client, clock):
    assert admin_client.get("/settings").status_code == 200
    clock.advance(hours=12, minutes=1)
    r = admin_client.get("/settings")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_logout_ends_the_session(admin_client):
    r = post_form(admin_client, "/logout", {})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert admin_client.get("/settings").status_code == 303


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(admin_client, ctx):
    before = _settings(ctx)
    data = {
        "sync_enabled": "on",
        "field": "sales_opt_out",
        "sales_opt_out_field": "Sales_Opt_Out__c",
        "schedule": "0 20 * * *",
        "timezone": "UTC",
    }
    path = "/settings/admin/unsubscribes/integrations/settings"
    for token in (None, "forged", ""):
        body = dict(data) if token is None else {**data, "csrf_token": token}
        r = admin_client.post(path, data=body)
        assert r.status_code == 403, r.text
        assert "Form expired" in r.text and "<title>" in r.text
    assert _settings(ctx) == before
    assert post_form(admin_client, path, data).status_code == 303
    assert _settings(ctx).sync_enabled is True


def test_the_login_form_itself_needs_the_token(client, users):
    r = client.post("/login", data={"email": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 403


def test_a_member_gets_403_on_every_admin_page(member_client):
    for path in ADMIN_ONLY_GET:
        r = member_client.get(path)
        assert r.status_code == 403, path
        assert "Admins only" in r.text
    for path in ADMIN_ONLY_POST:
        r = post_form(member_client, path, {"reason": "x", "mode": "sync"})
        assert r.status_code == 403, path
    page = member_client.get("/settings/admin/unsubscribes")
    assert page.status_code == 200
    assert "tab=integrations" not in page.text  # no tab they cannot open


def test_anonymous_users_are_sent_to_login_with_next(client):
    for path in [*SIGNED_IN_GET, *ADMIN_ONLY_GET]:
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=/settings"), r.headers
    r = client.get("/settings/admin/unsubscribes?tab=integrations")
    assert r.headers["location"] == "/login?next=/settings/admin/unsubscribes%3Ftab%3Dintegrations"
    for path in ADMIN_ONLY_POST:  # the CSRF check comes first: no session, no token
        assert client.post(path, data={}).status_code == 403


def test_next_must_be_a_local_path(client, users):
    for bad in (
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:x",
        "settings",
    ):
        assert safe_next(bad) == "/settings", bad
    assert safe_next("/settings/admin/unsubscribes?tab=integrations").endswith("integrations")
    r = _login(client, *ADMIN, next_path="//evil.example/")
    assert r.headers["location"] == "/settings"


def test_admin_pages_carry_the_security_headers(admin_client):
    r = admin_client.get("/settings/admin/unsubscribes?tab=integrations")
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text


def test_sign_in_as_member_then_roles_are_read_fresh(ctx, member_client):
    from optsync.store.models import User

    assert member_client.get(ADMIN_ONLY_GET[0]).status_code == 403
    with ctx.db.transaction() as s:
        s.scalars(select(User).where(User.email == MEMBER[0])).one().is_admin = True
    assert member_client.get(ADMIN_ONLY_GET[0]).status_code == 200


def _settings(ctx):
    with ctx.db.transaction() as s:
        return get_settings(s)


def test_sign_in_page_redirects_a_signed_in_user(app, users):
    with new_client(app) as c:
        sign_in(c, ADMIN)
        r = c.get("/login?next=/settings/admin/unsubscribes")
        assert r.status_code == 303 and r.headers["location"] == "/settings/admin/unsubscribes"
