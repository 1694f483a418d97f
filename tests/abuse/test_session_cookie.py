"""The session cookie is signed, not encrypted: it must never carry an address. The
notices shown after a redirect ("… is unsubscribed") name no address."""

from __future__ import annotations

import base64
import json

from optsync.web.admin.auth import SESSION_COOKIE
from tests.integration.admin.conftest import post_form

BASE = "/settings/admin/unsubscribes"
ADDRESS = "cookie.person@example.org"


def _session(client) -> dict:
    raw = client.cookies.get(SESSION_COOKIE)
    assert raw, "no session cookie"
    payload = raw.split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def _assert_no_address(client):
    data = _session(client)
    text = json.dumps(data)
    assert "@" not in text and "cookie.person" not in text, data


def test_no_address_in_the_cookie_after_actions_that_show_a_notice(admin_client):
    r = post_form(admin_client, f"{BASE}/add", {"email": ADDRESS, "reason": "asked"}, page=BASE)
    assert r.status_code == 303, r.text
    _assert_no_address(admin_client)
    person_page = r.headers["location"]
    shown = admin_client.get(person_page).text
    assert "is unsubscribed" in shown and ADDRESS in shown  # the page itself shows it
    # again: "already unsubscribed"
    post_form(admin_client, f"{BASE}/add", {"email": ADDRESS, "reason": "asked"}, page=BASE)
    _assert_no_address(admin_client)
    admin_client.get(person_page)
    r = post_form(
        admin_client, f"{person_page}/remove", {"reason": "asked to rejoin"}, page=person_page
    )
    assert r.status_code == 303, r.text
    _assert_no_address(admin_client)
    r = post_form(admin_client, f"{person_page}/remove", {"reason": "again"}, page=person_page)
    _assert_no_address(admin_client)


def test_a_notice_never_stores_an_address_whoever_writes_it(admin_client):
    from starlette.requests import Request

    from optsync.web.admin.templating import flash

    request = Request({"type": "http", "session": {}})
    flash(request, "Connected as integration.user@example.com to the org.")
    assert "@example.com" not in json.dumps(request.session)
    assert "integration.user" not in json.dumps(request.session)
