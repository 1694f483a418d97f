"""Response shapes against reference bodies written from Salesforce's developer guides.

Each fixture in ``tests/emulator/shapes/`` is a response body as the documentation
publishes it (see its ``source``; docs/salesforce-api.md quotes them). The test compares
key sets exactly and value types (``null`` in a reference means "may be null"); in lists
element i is compared with the reference's element i (or its last one).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from optsync.emulator import Emulator
from tests.emulator.helpers import Raw

pytestmark = pytest.mark.emulator
SHAPES = Path(__file__).parent / "shapes"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def mismatches(ref: Any, got: Any, path: str = "$") -> list[str]:
    """Where ``got`` differs from ``ref`` in key sets or value types."""
    if ref is None:
        return []
    if _kind(got) != _kind(ref):
        return [f"{path}: {_kind(got)} where the reference has {_kind(ref)}"]
    out: list[str] = []
    if isinstance(ref, dict):
        if set(ref) != set(got):
            missing, extra = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
            out.append(f"{path}: missing {missing}, extra {extra}")
        for key in set(ref) & set(got):
            out += mismatches(ref[key], got[key], f"{path}.{key}")
    elif isinstance(ref, list) and ref:
        for i, item in enumerate(got):
            out += mismatches(ref[min(i, len(ref) - 1)], item, f"{path}[{i}]")
    return out


def reference(name: str) -> Any:
    return json.loads((SHAPES / f"{name}.json").read_text())["body"]


def test_the_comparison_catches_differences() -> None:
    assert mismatches({"a": 1, "b": [{"c": True}]}, {"a": 2, "b": [{"c": True}]}) == []
    assert mismatches({"a": 1}, {"a": "1"}) == ["$.a: string where the reference has number"]
    assert mismatches({"a": True}, {"a": 1}) == ["$.a: number where the reference has boolean"]
    assert mismatches({"a": 1}, {"a": 1, "b": 2}) == ["$: missing [], extra ['b']"]
    assert mismatches([{"x": 1}], [{"x": 1}, {}]) == ["$[1]: missing ['x'], extra []"]


def _check(name: str, body: Any) -> None:
    assert mismatches(reference(name), body) == []


def test_oauth_and_identity_shapes(emu: Emulator) -> None:
    token = emu.token()
    _check("token", token)
    http = emu.http()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    _check("identity", http.get(token["id"], headers=auth, timeout=30).json())
    userinfo = http.get(f"{emu.instance_url}/services/oauth2/userinfo", headers=auth, timeout=30)
    _check("userinfo", userinfo.json())
    bad = http.post(
        f"{emu.login_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "username": emu.username,
            "password": "no",
        },
        timeout=30,
    )
    _check("oauth_error", bad.json())


@pytest.mark.parametrize("obj", ["Contact", "Lead", "Account"])
def test_describe_shapes(emu: Emulator, obj: str) -> None:
    raw = Raw(emu)
    body = raw.get(f"sobjects/{obj}/describe").json()
    ref_field = reference("describe")["fields"][0]
    # Every field entry has the recorded key set; checkboxes also the recorded types.
    assert [f["name"] for f in body["fields"] if set(f) != set(ref_field)] == []
    checkboxes = [f for f in body["fields"] if f["type"] == "boolean"]
    _check("describe", {**body, "fields": checkboxes})
    assert len(body) == 45 and len(ref_field) == 57
    _check("sobject_basic", raw.get(f"sobjects/{obj}").json())


def test_describe_global_shape(emu: Emulator) -> None:
    _check("describe_global", Raw(emu).get("sobjects").json())


def test_query_and_error_shapes(emu: Emulator) -> None:
    emu.seed(contacts=250, leads=0, opted_out_fraction=0.1)
    raw = Raw(emu)
    soql = "SELECT Id, Email, HasOptedOutOfEmail FROM Contact"
    page = raw.get("query", params={"q": soql}, headers={"Sforce-Query-Options": "batchSize=200"})
    _check("query_page", page.json())
    _check("query_last_page", raw.get(page.json()["nextRecordsUrl"]).json())
    _check("rest_error", raw.get("query", params={"q": "SELECT X FROM Contact"}).json())
    _check("session_error", Raw(emu, "bogus").get("limits").json())


def test_collection_result_shapes(emu: Emulator) -> None:
    raw = Raw(emu)
    ok = raw.post("sobjects/Contact", json={"LastName": "A"}).json()["id"]
    gone = raw.post("sobjects/Contact", json={"LastName": "B"}).json()["id"]
    raw.delete(f"sobjects/Contact/{gone}")
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": ok, "Title": "x"},
            {"attributes": {"type": "Contact"}, "id": gone, "Title": "x"},
        ],
    }
    results = raw.patch("composite/sobjects", json=body).json()
    _check("collection_results", results)
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def _wait(raw: Raw, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = raw.get(path).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return dict(info)
        time.sleep(0.05)
    raise AssertionError(f"{path} did not finish")


def test_bulk_job_info_shapes(emu: Emulator) -> None:
    raw = Raw(emu)
    job = raw.post(
        "jobs/ingest", json={"object": "Contact", "operation": "insert", "lineEnding": "LF"}
    ).json()
    raw.put(
        f"jobs/ingest/{job['id']}/batches",
        data="LastName,Title\nA,Boss\n",
        headers={"Content-Type": "text/csv"},
    )
    raw.patch(f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    info = _wait(raw, f"jobs/ingest/{job['id']}")
    _check("bulk_ingest_job", info)
    query = raw.post(
        "jobs/query", json={"operation": "query", "query": "SELECT Id FROM Contact"}
    ).json()
    done = _wait(raw, f"jobs/query/{query['id']}")
    assert done["jobType"] == "V2Query"
    # The guides publish no complete query JobInfo; it shares the ingest job's envelope.
    common = {
        k: v
        for k, v in reference("bulk_ingest_job").items()
        if k
        in (
            "id",
            "operation",
            "object",
            "createdById",
            "createdDate",
            "systemModstamp",
            "state",
            "concurrencyMode",
            "contentType",
            "apiVersion",
            "lineEnding",
            "columnDelimiter",
            "jobType",
        )
    }
    assert mismatches(common, {k: done.get(k) for k in common}) == []
