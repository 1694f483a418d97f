"""The Composite resource (``/composite``), Composite batch (``/composite/batch``) and the
request-size limits (URI 16,384 bytes, SOQL 100,000 characters)."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from optsync.emulator import Emulator

from .helpers import Raw, error_code

pytestmark = pytest.mark.emulator

B = "/services/data/v59.0"
HALTED = "PROCESSING_HALTED"


def _composite(sf: Salesforce, requests: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    body = sf.restful("composite", method="POST", json={"compositeRequest": requests, **kw})
    assert isinstance(body, dict) and set(body) == {"compositeResponse"}
    results = body["compositeResponse"]
    for r in results:
        assert set(r) == {"body", "httpHeaders", "httpStatusCode", "referenceId"}
    return list(results)


def test_create_then_reference_then_query_is_one_api_call(emu: Emulator, sf: Salesforce) -> None:
    out = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{B}/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Acme"},
            },
            {
                "method": "POST",
                "url": f"{B}/sobjects/Contact",
                "referenceId": "ann",
                "body": {"LastName": "Lee", "Email": "ann@example.com", "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": f"{B}/sobjects/Contact/@{{ann.id}}?fields=AccountId,Email",
                "referenceId": "read",
            },
            {
                "method": "PATCH",
                "url": f"{B}/sobjects/Contact/@{{ann.id}}",
                "referenceId": "optout",
                "body": {"HasOptedOutOfEmail": True},
            },
            {
                "method": "GET",
                "url": f"{B}/query?q=SELECT+Id,HasOptedOutOfEmail+FROM+Contact+"
                "WHERE+Email+IN+('ANN@example.com')",
                "referenceId": "q",
            },
        ],
        allOrNone=False,
    )
    acct, ann, read, optout, q = out
    assert acct["httpStatusCode"] == 201 and acct["referenceId"] == "acct"
    assert acct["body"] == {"id": acct["body"]["id"], "success": True, "errors": []}
    assert acct["httpHeaders"] == {"Location": f"{B}/sobjects/Account/{acct['body']['id']}"}
    assert ann["httpStatusCode"] == 201
    assert read["httpStatusCode"] == 200
    assert read["body"]["AccountId"] == acct["body"]["id"]
    assert optout == {
        "body": None,
        "httpHeaders": {},
        "httpStatusCode": 204,
        "referenceId": "optout",
    }
    assert q["httpStatusCode"] == 200
    assert q["body"]["totalSize"] == 1
    assert q["body"]["records"][0]["HasOptedOutOfEmail"] is True
    counters = emu.control("GET", "counters")
    assert counters["total"] == 1
    assert counters["by_endpoint"] == {"composite": 1}


def test_collections_subrequest_and_query_reference(emu: Emulator, sf: Salesforce) -> None:
    ids = emu.seed(contacts=3, leads=1)
    records = [
        {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True}
        for i in ids["contact_ids"]
    ]
    out = _composite(
        sf,
        [
            {
                "method": "GET",
                "url": f"{B}/query?q=SELECT+Id+FROM+Lead",
                "referenceId": "leads",
            },
            {
                "method": "PATCH",
                "url": f"{B}/composite/sobjects",
                "referenceId": "set",
                "body": {
                    "allOrNone": False,
                    "records": [
                        *records,
                        {
                            "attributes": {"type": "Lead"},
                            "id": "@{leads.records[0].Id}",
                            "HasOptedOutOfEmail": True,
                        },
                    ],
                },
            },
        ],
    )
    assert out[1]["httpStatusCode"] == 200
    assert [r["success"] for r in out[1]["body"]] == [True] * 4
    assert out[1]["body"][3]["id"] == ids["lead_ids"][0]
    lead = emu.control("GET", f"records/{ids['lead_ids'][0]}")
    assert lead["HasOptedOutOfEmail"] is True


def test_all_or_none_rolls_back_and_halts(emu: Emulator, sf: Salesforce) -> None:
    out = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{B}/sobjects/Contact",
                "referenceId": "ok",
                "body": {"LastName": "Kept?"},
            },
            {
                "method": "POST",
                "url": f"{B}/sobjects/Contact",
                "referenceId": "bad",
                "body": {"LastName": "Bad", "Email": "not an address"},
            },
            {
                "method": "POST",
                "url": f"{B}/sobjects/Lead",
                "referenceId": "after",
                "body": {"LastName": "Never", "Company": "X"},
            },
        ],
        allOrNone=True,
    )
    ok, bad, after = out
    assert bad["httpStatusCode"] == 400
    assert bad["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    for r in (ok, after):
        assert r["httpStatusCode"] == 400
        assert r["body"][0]["errorCode"] == HALTED
        assert "rolled back" in r["body"][0]["message"]
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0


def test_all_or_none_false_keeps_successes_and_halts_dependents(
    emu: Emulator, sf: Salesforce
) -> None:
    out = _composite(
        sf,
        [
            {
                "method": "POST",
                "url": f"{B}/sobjects/Account",
                "referenceId": "noname",
                "body": {"Website": "x.example"},
            },
            {
                "method": "POST",
                "url": f"{B}/sobjects/Contact",
                "referenceId": "dependent",
                "body": {"LastName": "D", "AccountId": "@{noname.id}"},
            },
            {
                "method": "POST",
                "url": f"{B}/sobjects/Contact",
                "referenceId": "independent",
                "body": {"LastName": "I"},
            },
        ],
    )
    noname, dependent, independent = out
    assert noname["httpStatusCode"] == 400
    assert noname["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert dependent["httpStatusCode"] == 400
    assert dependent["body"][0]["errorCode"] == HALTED
    assert independent["httpStatusCode"] == 201
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 1


def test_subrequest_errors_keep_their_shape(emu: Emulator, sf: Salesforce) -> None:
    out = _composite(
        sf,
        [
            {"method": "GET", "url": f"{B}/sobjects/Contact/003000000000001", "referenceId": "a"},
            {
                "method": "GET",
                "url": f"{B}/query?q=SELECT+PersonEmail+FROM+Contact",
                "referenceId": "b",
            },
            {"method": "GET", "url": f"{B}/nonsense", "referenceId": "c"},
            {"method": "PUT", "url": f"{B}/sobjects/Contact", "referenceId": "d"},
        ],
    )
    assert [r["httpStatusCode"] for r in out] == [404, 400, 404, 405]
    assert [r["body"][0]["errorCode"] for r in out] == [
        "NOT_FOUND",
        "INVALID_FIELD",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
    ]


def test_limits_and_malformed_requests(emu: Emulator) -> None:
    raw = Raw(emu)
    many = [{"method": "GET", "url": f"{B}/limits", "referenceId": f"r{i}"} for i in range(26)]
    resp = raw.post("composite", json={"compositeRequest": many})
    assert resp.status_code == 400
    body = resp.json()["compositeResponse"]
    assert body == [
        {
            "body": [
                {
                    "errorCode": "LIMIT_EXCEEDED",
                    "message": "The request can\u2019t contain more than 25 operations.",
                }
            ],
            "httpHeaders": {},
            "httpStatusCode": 400,
            "referenceId": None,
        }
    ]
    six_queries = [
        {"method": "GET", "url": f"{B}/query?q=SELECT+Id+FROM+Lead", "referenceId": f"q{i}"}
        for i in range(6)
    ]
    resp = raw.post("composite", json={"compositeRequest": six_queries})
    assert resp.status_code == 400
    assert resp.json()["compositeResponse"][0]["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    dup = [
        {"method": "GET", "url": f"{B}/limits", "referenceId": "same"},
        {"method": "GET", "url": f"{B}/limits", "referenceId": "same"},
    ]
    assert raw.post("composite", json={"compositeRequest": dup}).status_code == 400
    bad_ref = [{"method": "GET", "url": f"{B}/limits", "referenceId": "has-dash"}]
    assert raw.post("composite", json={"compositeRequest": bad_ref}).status_code == 400
    assert error_code(raw.post("composite", json={"nope": []})) == "JSON_PARSER_ERROR"
    no_url = [{"method": "GET", "referenceId": "x"}]
    assert raw.post("composite", json={"compositeRequest": no_url}).status_code == 400
    assert raw.put("composite").status_code == 405
    assert raw.get("composite").json()["batch"] == f"{B}/composite/batch"
    assert emu.control("GET", "counters")["by_endpoint"]["composite"] == 8


def test_composite_writes_emit_change_events_as_one_transaction(
    emu: Emulator, sf: Salesforce
) -> None:
    ids = emu.seed(contacts=2)
    before = emu.control("GET", "pubsub")["retained"]
    _composite(
        sf,
        [
            {
                "method": "PATCH",
                "url": f"{B}/sobjects/Contact/{i}",
                "referenceId": f"c{n}",
                "body": {"HasOptedOutOfEmail": True},
            }
            for n, i in enumerate(ids["contact_ids"])
        ],
        allOrNone=True,
    )
    assert emu.control("GET", "pubsub")["retained"] > before


def test_composite_batch(emu: Emulator, sf: Salesforce) -> None:
    ids = emu.seed(contacts=1)
    cid = ids["contact_ids"][0]
    body = sf.restful(
        "composite/batch",
        method="POST",
        json={
            "batchRequests": [
                {
                    "method": "PATCH",
                    "url": f"v59.0/sobjects/Contact/{cid}",
                    "richInput": {"Title": "CTO"},
                },
                {"method": "GET", "url": f"v59.0/sobjects/Contact/{cid}?fields=Title"},
                {"method": "GET", "url": "v59.0/query?q=SELECT+Id+FROM+Contact"},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "richInput": {}},
            ]
        },
    )
    assert body["hasErrors"] is True
    results = body["results"]
    assert [set(r) for r in results] == [{"statusCode", "result"}] * 4
    assert results[0] == {"statusCode": 204, "result": None}
    assert results[1]["result"]["Title"] == "CTO"
    assert results[2]["result"]["totalSize"] == 1
    assert results[3]["statusCode"] == 400
    assert results[3]["result"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    # each subrequest counts against the allocation
    assert emu.control("GET", "counters")["by_endpoint"] == {"composite/batch": 4}


def test_composite_batch_halt_on_error_and_limit(emu: Emulator) -> None:
    raw = Raw(emu)
    body = raw.post(
        "composite/batch",
        json={
            "haltOnError": True,
            "batchRequests": [
                {"method": "POST", "url": "v59.0/sobjects/Contact", "richInput": {}},
                {"method": "POST", "url": "v59.0/sobjects/Contact", "richInput": {"LastName": "X"}},
            ],
        },
    ).json()
    assert body["hasErrors"] is True
    assert body["results"][1]["statusCode"] == 412
    assert body["results"][1]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"
    assert emu.control("GET", "counters")["by_endpoint"]["composite/batch"] == 1  # halted: not run
    too_many = [{"method": "GET", "url": "v59.0/limits"}] * 26
    resp = raw.post("composite/batch", json={"batchRequests": too_many})
    assert resp.status_code == 400
    assert error_code(resp) == "INVALID_BATCH_REQUEST"


def test_uri_too_long_and_soql_too_long(emu: Emulator, sf: Salesforce) -> None:
    raw = Raw(emu)
    addresses = ",".join(f"'person{i}@example.com'" for i in range(800))
    soql = f"SELECT Id FROM Contact WHERE Email IN ({addresses})"
    assert len(soql) > 16_384
    resp = raw.get("query", params={"q": soql})
    assert resp.status_code == 414
    # the same query fits in a composite body (Salesforce's advice for long SOQL)
    out = _composite(sf, [{"method": "GET", "url": f"{B}/query?q={soql}", "referenceId": "long"}])
    assert out[0]["httpStatusCode"] == 200
    huge = "SELECT Id FROM Contact WHERE Email IN (" + ",".join(["'a@b.co'"] * 12_600) + ")"
    assert len(huge) > 100_000
    out = _composite(sf, [{"method": "GET", "url": f"{B}/query?q={huge}", "referenceId": "huge"}])
    assert out[0]["httpStatusCode"] == 400
    assert out[0]["body"][0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest):
        sf.restful("composite", method="POST", json={"compositeRequest": "x"})


def test_resources_list_names_composite(emu: Emulator) -> None:
    assert Raw(emu).get("").json()["composite"] == f"{B}/composite"
