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
