"""Settings → Admin Settings → Users and tokens in Chromium (#13 item 1): the list, a
token revoked after its confirmation (and refused by the API at once), a user removed
after a confirmation (their open session sent to sign in), the last admin refused."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from optsync.services.accounts import add_user, create_token
from tests.browser.conftest import ADMIN, MEMBER, sign_in

pytestmark = pytest.mark.browser

PAGE = "/settings/admin/users"
LEAVER = ("leaver@example.com", "a leaver's password")


def _open_users_page(page, live) -> None:
    sign_in(page, live, ADMIN)
    page.get_by_role("region", name="Admin Settings").get_by_role(
        "link", name="Users and tokens"
    ).click()
    expect(page).to_have_title("Users and tokens · optsync")


def test_the_list_and_revoking_a_token(live, new_page):
    with live.ctx.db.transaction() as s:
        token = create_token(s, "browser-mailer", is_admin=False, now=live.ctx.clock())
    api = live.get("/api/v1/settings/unsubscribe-sync")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(api, headers=headers, timeout=10).status_code == 200

    page = new_page()
    _open_users_page(page, live)
    users = page.locator("table#users")
    expect(users).to_contain_text(ADMIN[0])
    expect(users).to_contain_text(MEMBER[0])
    row = page.locator('table#tokens tr[data-token="browser-mailer"]')
    expect(row).to_contain_text("member")
    expect(row).to_contain_text(token[:8])
    assert token[8:] not in page.content()

    row.get_by_role("link", name="Revoke the token browser-mailer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke the token 'browser-mailer'?")
    assert httpx.get(api, headers=headers, timeout=10).status_code == 200  # not yet
    page.get_by_role("button", name="Revoke the token").click()
    expect(page.get_by_role("status").filter(has_text="The token was revoked.")).to_be_visible()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("link")).to_have_count(0)
    assert httpx.get(api, headers=headers, timeout=10).status_code == 401
    expect(page.locator("table#audit")).to_contain_text("token.revoke")


def test_removing_a_user_after_confirmation_ends_their_session(live, new_page):
    with live.ctx.db.transaction() as s:
        add_user(s, LEAVER[0], LEAVER[1], is_admin=False, now=live.ctx.clock())
    leaver = new_page()
    sign_in(leaver, live, LEAVER)
    expect(leaver.get_by_role("heading", level=1)).to_have_text("Settings")

    page = new_page()
    _open_users_page(page, live)
    row = page.locator(f'table#users tr[data-user="{LEAVER[0]}"]')
    row.get_by_role("link", name=f"Remove: {LEAVER[0]}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Remove {LEAVER[0]}?")
    page.get_by_role("link", name="Cancel").click()  # cancelling changes nothing
    expect(row).to_be_visible()
    row.get_by_role("link", name=f"Remove: {LEAVER[0]}").click()
    page.get_by_role("button", name="Remove the user").click()
    expect(
        page.get_by_role("status").filter(has_text="The user was removed; their sessions")
    ).to_be_visible()
    expect(page.locator(f'table#users tr[data-user="{LEAVER[0]}"]')).to_have_count(0)
    expect(page.locator("table#audit")).to_contain_text("user.remove")

    leaver.reload()
    assert "/login" in leaver.url
    expect(leaver.get_by_role("button", name="Sign in")).to_be_visible()


def test_the_last_admin_cannot_be_made_a_member(live, new_page):
    page = new_page()
    _open_users_page(page, live)
    row = page.locator(f'table#users tr[data-user="{ADMIN[0]}"]')
    row.get_by_role("link", name=f"Make member: {ADMIN[0]}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Make {ADMIN[0]} a member?")
    page.get_by_role("button", name="Make a member").click()
    expect(page.get_by_role("alert")).to_contain_text("is the last admin")
    page.goto(live.get(PAGE))
    expect(row).to_contain_text("admin")
    # and removing it is refused the same way
    row.get_by_role("link", name=f"Remove: {ADMIN[0]}").click()
    page.get_by_role("button", name="Remove the user").click()
    expect(page.get_by_role("alert")).to_contain_text("is the last admin")
    page.goto(live.get(PAGE))
    expect(page.locator("table#users")).to_contain_text(ADMIN[0])
