"""Bearer tokens, admin rights, the error shape, body limits, health and metrics."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from optsync.store.models import ApiToken
from optsync.web.app import create_app
from tests.integration.web.conftest import BASE_URL, assert_error

PROTECTED = [
    ("get", "/api/v1/persons/1"),
    ("get", "/api/v1/persons?email=a@example.com"),
    ("post", "/api/v1/suppression/check"),
    ("get", "/api/v1/settings/unsubscribe-sync"),
    ("get", "/metrics"),
]


def test_missing_and_bad_tokens_get_401_json(client):
    for method, path in PROTECTED:
        r = getattr(client, method)(path)
        assert_error(r, 401, "unauthorized", "Authorization")
        assert r.headers["www-authenticate"] == "Bearer"
        for header in ("Bearer osk_wrong", "Basic dXNlcjpwYXNz", "Bearer "):
            r = getattr(client, method)(path, headers={"Authorization": header})
            assert_error(r, 401, "unauthorized")


def test_a_revoked_token_is_refused(client, ctx, member_headers):
    assert (
        client.get("/api/v1/settings/unsubscribe-sync", headers=member_headers).status_code == 200
    )
    with ctx.db.transaction() as s:
        s.execute(update(ApiToken).values(revoked_at=ctx.clock()))
    r = client.get("/api/v1/settings/unsubscribe-sync", headers=member_headers)
    assert_error(r, 401, "unauthorized")


def test_admin_routes_refuse_a_member_token(client, member_headers):
    r = client.put(
        "/api/v1/settings/unsubscribe-sync", json={"sync_enabled": True}, headers=member_headers
    )
    assert_error(r, 403, "forbidden")
    r = client.delete("/api/v1/unsubscribes/1?reason=asked", headers=member_headers)
    assert_error(r, 403, "forbidden")


def test_last_used_at_is_written_at_most_once_a_minute(client, ctx, clock, member_headers):
    def last_used():
        with ctx.db.transaction() as s:
            return s.scalar(select(ApiToken.last_used_at))

    path = "/api/v1/settings/unsubscribe-sync"
    client.get(path, headers=member_headers)
    first = last_used()
    assert first == clock()
    clock.advance(seconds=30)
    client.get(path, headers=member_headers)
    assert last_used() == first
    clock.advance(seconds=31)
    client.get(path, headers=member_headers)
    assert last_used() == clock() and clock() - first == timedelta(seconds=61)


def test_unknown_route_and_wrong_method_keep_the_error_shape(client, member_headers):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.patch("/api/v1/links", headers=member_headers), 405, "method_not_allowed")


def test_validation_errors_name_the_field_and_never_leak_detail(client, member_headers):
    r = client.post("/api/v1/suppression/check", json={"emails": "x"}, headers=member_headers)
    assert_error(r, 422, "validation_error", "emails")
    r = client.post(
        "/api/v1/suppression/check",
        content=b"{not json",
        headers={**member_headers, "Content-Type": "application/json"},
    )
    assert_error(r, 422, "validation_error", "body")
    r = client.post(
        "/api/v1/suppression/check", json={"emails": [], "x": 1}, headers=member_headers
    )
    assert_error(r, 422, "validation_error", "x")
    assert "detail" not in r.text


def test_bodies_over_the_limit_get_413(ctx, member_headers):
    from fastapi.testclient import TestClient

    app = create_app(ctx, max_body_bytes=1000)
    with TestClient(app, base_url=BASE_URL) as client:
        big = {"emails": ["a@example.com"] * 200}
        r = client.post("/api/v1/suppression/check", json=big, headers=member_headers)
        assert_error(r, 413, "payload_too_large")

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(20):
                yield b" " * 100

        r = client.post(
            "/api/v1/suppression/check",
            content=chunks(),
            headers={**member_headers, "Content-Type": "application/json"},
        )
        assert_error(r, 413, "payload_too_large")
        r = client.post(
            "/u/whatever",
            content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code in (400, 413)


def test_default_limit_is_5_mib(client, member_headers):
    r = client.post(
        "/api/v1/suppression/check",
        content=b"x" * (5 * 1024 * 1024 + 1),
        headers={**member_headers, "Content-Type": "application/json"},
    )
    assert_error(r, 413, "payload_too_large")


def test_healthz_and_readyz_need_no_token(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_is_503_when_the_schema_is_behind(app, client, monkeypatch):
    monkeypatch.setattr(app.state, "schema_head", "9999_future")
    assert_error(client.get("/readyz"), 503, "not_ready")


def test_metrics_need_a_token_and_report_the_outbox(client, member_headers):
    client.post("/api/v1/unsubscribes", json={"email": "m@example.com"}, headers=member_headers)
    r = client.get("/metrics", headers=member_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'optsync_outbox_depth{state="pending"} 1.0' in r.text  # until looked up
    assert 'optsync_unsubscribes_recorded_total{source="api"}' in r.text


def test_openapi_declares_bearer_auth_and_error_shapes(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    check = spec["paths"]["/api/v1/suppression/check"]["post"]
    assert check["security"] == [{"HTTPBearer": []}]
    for status in ("401", "413", "422"):
        ref = check["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut")
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert spec["paths"]["/api/v1/salesforce/check"]["get"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/api/v1/sync/runs"]["post"]["security"] == [{"HTTPBearer": []}]


def test_an_unexpected_failure_is_a_json_500_without_details(client, member_headers, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret detail ann@example.com")

    monkeypatch.setattr("optsync.web.api.suppression.suppression.check", broken)
    r = client.post(
        "/api/v1/suppression/check", json={"emails": ["a@example.com"]}, headers=member_headers
    )
    assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and "ann@" not in r.text
    assert r.headers["x-frame-options"] == "DENY"
