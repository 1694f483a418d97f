"""The API holds its inputs to their JSON types: ``true``, ``"1"`` or ``1.0`` is not a
person id, and no body field is coerced from another JSON type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from tests.integration.conftest import BASE_URL

API = "/api/v1"


@pytest.fixture
def api(app) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def person_one(ctx) -> int:
    with ctx.db.transaction() as s:
        person, _ = upsert_person(s, PersonInput(1, "one@example.com", None, None), ctx.clock())
        return person.id


@pytest.mark.parametrize("wrong", [True, "1", 1.0, [1], {"id": 1}])
def test_a_person_id_of_another_json_type_unsubscribes_nobody(
    api, admin_headers, ctx, person_one, wrong
):
    r = api.post(f"{API}/unsubscribes", json={"person_id": wrong}, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "person_id"
    with ctx.db.transaction() as s:
        assert optouts.lock_person(s, person_one).unsubscribed is False


WRONG_TYPES = [
    ("POST", "/unsubscribes", {"email": 5}),
    ("POST", "/unsubscribes", {"email": "ann@example.com", "reason": 5}),
    ("POST", "/unsubscribes", {"email": "ann@example.com", "source": 1}),
    ("POST", "/unsubscribes/bulk", {"emails": ["ann@example.com", 5]}),
    ("POST", "/unsubscribes/bulk", {"emails": ["ann@example.com"], "reason": False}),
    ("POST", "/persons", {"email": 5}),
    ("POST", "/persons", {"email": "ann@example.com", "first_name": 5}),
    ("POST", "/persons", {"email": "ann@example.com", "salesforce_id": 3000000000000001}),
    ("POST", "/persons/bulk", {"persons": [{"email": True}]}),
    ("POST", "/links", {"email": 1.5}),
    ("POST", "/suppression/check", {"emails": [1]}),
    ("POST", "/pushes/retry", {"codes": [1]}),
    ("POST", "/pushes/retry", {"all_failed": "true"}),
    ("POST", "/pushes/retry", {"all_failed": 1}),
    ("PUT", "/settings/unsubscribe-sync", {"sync_enabled": "true"}),
    ("PUT", "/settings/unsubscribe-sync", {"schedule": 5}),
    ("PUT", "/settings/unsubscribe-sync", {"sales_opt_out_field": "Sales_Opt_Out__c\n"}),
    ("POST", "/sync/runs", {"dry_run": "true"}),
    ("POST", "/sync/runs", {"dry_run": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRONG_TYPES)
def test_no_body_field_is_coerced_from_another_json_type(api, admin_headers, method, path, body):
    r = api.request(method, API + path, json=body, headers=admin_headers)
    assert r.status_code == 422, (path, body, r.status_code, r.text)
    assert r.json()["error"]["code"] == "validation_error"


def test_the_right_types_still_work(api, admin_headers, person_one, ctx):
    r = api.post(f"{API}/unsubscribes", json={"person_id": person_one}, headers=admin_headers)
    assert r.status_code == 201, r.text
    r = api.post(
        f"{API}/unsubscribes",
        json={"email": "two@example.com", "source": "csv", "reason": "list"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    started = api.post(f"{API}/sync/runs", json={"dry_run": True}, headers=admin_headers)
    assert started.status_code == 202, started.text


def _max_lengths(node, name=None, out=None):
    """(property name, maxLength) for every string schema in the document."""
    out = [] if out is None else out
    if isinstance(node, dict):
        if "maxLength" in node and node.get("type") == "string":
            out.append((name, node["maxLength"]))
        for key, value in node.items():
            child = key if key not in ("items", "anyOf", "allOf", "oneOf", "schema") else name
            if key == "properties":
                for prop, schema in value.items():
                    _max_lengths(schema, prop, out)
            else:
                _max_lengths(value, child, out)
    elif isinstance(node, list):
        for value in node:
            _max_lengths(value, name, out)
    return out


def test_the_openapi_document_promises_the_limits_the_server_enforces(api):
    from optsync.domain.emails import MAX_LENGTH
    from optsync.services.persons import MAX_NAME_LENGTH

    document = api.get("/openapi.json").json()
    limits = _max_lengths(document)
    by_name: dict[str, set[int]] = {}
    for name, limit in limits:
        by_name.setdefault(name, set()).add(limit)
    assert by_name["email"] == {MAX_LENGTH}, by_name
    assert by_name["emails"] == {MAX_LENGTH}, by_name
    assert by_name["first_name"] == by_name["last_name"] == {MAX_NAME_LENGTH}, by_name


def test_one_character_past_a_documented_limit_is_refused_at_the_edge(api, admin_headers, ctx):
    long_email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "ccc.com"
    assert len(long_email) == 255
    r = api.post(f"{API}/persons", json={"email": long_email}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "email", r.text
    name = "n" * 201
    body = {"email": "ann@example.com", "first_name": name}
    r = api.post(f"{API}/persons", json=body, headers=admin_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "first_name", r.text
    ok = api.post(
        f"{API}/persons",
        json={"email": "ann@example.com", "first_name": "n" * 200},
        headers=admin_headers,
    )
    assert ok.status_code in (200, 201), ok.text
