"""Where sign-in may send a user next: local paths only (no open redirect)."""

from __future__ import annotations

import pytest

from optsync.web.admin.auth import login_url, safe_next


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "/settings/admin/unsubscribes?tab=integrations",
            "/settings/admin/unsubscribes?tab=integrations",
        ),
        ("/settings/admin/unsubscribes/persons/7", "/settings/admin/unsubscribes/persons/7"),
        ("", "/settings"),
        (None, "/settings"),
        ("settings", "/settings"),
        ("//evil.example/", "/settings"),
        ("/\\evil.example", "/settings"),
        ("https://evil.example/settings", "/settings"),
        ("javascript:alert(1)", "/settings"),
        ("/settings\r\nSet-Cookie: x=1", "/settings"),
        ("/a\\b", "/settings"),
    ],
)
def test_only_local_paths_are_followed(given, expected):
    assert safe_next(given) == expected


def test_login_url_quotes_the_query():
    assert login_url("/settings/admin/unsubscribes?tab=integrations") == (
        "/login?next=/settings/admin/unsubscribes%3Ftab%3Dintegrations"
    )
    assert login_url("//evil.example") == "/login?next=/settings"
