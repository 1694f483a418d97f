"""Every response carries the security headers, the strict CSP included: pages, the API,
errors, static files, redirects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from optsync.services.links import UnsubscribeLinks
from optsync.services.persons import PersonInput, upsert_person
from tests.integration.conftest import BASE_URL

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
CSP_DIRECTIVES = {
    "default-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "object-src": "'none'",
}


@pytest.fixture
def web(app) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as c:
        yield c


def _check(r) -> None:
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers.get(name))
    csp = dict(
        [*part.strip().split(" ", 1), ""][:2]
        for part in r.headers["content-security-policy"].split(";")
    )
    for directive, value in CSP_DIRECTIVES.items():
        assert csp.get(directive) == value, (r.request.url, directive, csp)
    assert "unsafe" not in r.headers["content-security-policy"]
    assert "script-src" not in csp  # no script may run anywhere
    assert "camera=()" in r.headers["permissions-policy"]
    # HSTS is meaningful only over https (the tests' base URL is https)
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_every_kind_of_response_has_the_headers(web, ctx, admin_headers):
    with ctx.db.transaction() as s:
        person, _ = upsert_person(s, PersonInput(1, "h@example.com", None, None), ctx.clock())
    token = UnsubscribeLinks("test", BASE_URL).token(person.id)
    responses = [
        web.get(f"/u/{token}"),
        web.get("/u/not-a-token"),
        web.get("/login"),
        web.get("/settings"),  # redirect to sign in
        web.get("/api/v1/sync/runs", headers=admin_headers),
        web.get("/api/v1/nothing-here"),
        web.patch("/api/v1/persons"),
        web.get("/static/optsync.css"),
        web.get("/healthz"),
    ]
    for r in responses:
        _check(r)


def test_no_hsts_over_plain_http(app):
    with TestClient(app, base_url="http://optsync.test") as c:
        assert "strict-transport-security" not in c.get("/healthz").headers
