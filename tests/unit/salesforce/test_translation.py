"""Pure parts of the gateway: error translation, per-record results, SOQL, field checks."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from optsync.domain.failures import Outcome
from optsync.domain.ids import make_id
from optsync.errors import UsageError
from optsync.salesforce import soql
from optsync.salesforce.fields import check_describe
from optsync.salesforce.translate import call_error
from optsync.salesforce.translate import record_result as _record_result


def test_rest_error_bodies_are_classified() -> None:
    err = call_error(
        SalesforceRefusedRequest(
            "u",
            403,
            "limits",
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
        )
    )
    assert err.status == 403 and err.outcome is Outcome.PAUSE_DAILY_LIMIT
    err = call_error(
        SalesforceMalformedRequest(
            "u", 400, "q", [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}]
        )
    )
    assert err.outcome is Outcome.RETRY and err.code == "UNABLE_TO_LOCK_ROW"
    err = call_error(
        SalesforceExpiredSession(
            "u", 401, "q", [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired"}]
        )
    )
    assert err.outcome is Outcome.RENEW_SESSION


def test_html_gateway_errors_are_transient() -> None:
    err = call_error(SalesforceGeneralError("u", 502, "q", "<html><body>Bad gateway</body></html>"))
    assert err.outcome is Outcome.RETRY and err.code == "HTTP_502"
    assert "Bad gateway" in err.message


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectTimeout("t"),
        requests.exceptions.ReadTimeout("t"),
        requests.exceptions.ConnectionError("reset"),
    ],
)
def test_no_response_means_retry(exc: Exception) -> None:
    err = call_error(exc)
    assert err.status is None and err.outcome is Outcome.RETRY and err.code == "NETWORK_ERROR"


@pytest.mark.parametrize(
    ("item", "success", "outcome"),
    [
        ({"id": "x", "success": True, "errors": []}, True, None),
        (
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "ENTITY_IS_DELETED",
                        "message": "entity is deleted",
                        "fields": [],
                    }
                ],
            },
            False,
            Outcome.FOLLOW_MERGE,
        ),
        (
            {
                "success": False,
                "errors": [
                    {
                        "statusCode": "CANNOT_UPDATE_CONVERTED_LEAD",
                        "message": "cannot reference converted lead",
                    }
                ],
            },
            False,
            Outcome.FOLLOW_CONVERSION,
        ),
        (
            {"success": False, "errors": [{"statusCode": "SOMETHING_NEW", "message": "?"}]},
            False,
            Outcome.PERMANENT,
        ),
        ({"success": False, "errors": []}, False, Outcome.PERMANENT),
    ],
)
def test_record_results(item: dict[str, Any], success: bool, outcome: Outcome | None) -> None:
    result = _record_result("003000000000000AAA", item)
    assert result.success is success
    assert (result.classification.outcome if result.classification else None) is outcome


@pytest.mark.parametrize(
    "name", ["HasOptedOutOfEmail", "Sales_Opt_Out__c", "ns__Sales_Opt_Out__c", "Do_Not_Email2__c"]
)
def test_field_names_accepted(name: str) -> None:
    assert soql.field_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "HasOptedOutOfEmail = true OR Id != null",
        "Id FROM Contact --",
        "x'",
        "Bad__Name__c__c",
        "_x",
        "x_",
        "a__b__c__d",
        "",
        "1Field",
        "A" * 81,
        "Field__c)",
    ],
)
def test_field_names_rejected(name: str) -> None:
    with pytest.raises(UsageError):
        soql.field_name(name)


def test_select_by_ids_quotes_values_and_checks_names() -> None:
    ids = [make_id("00Q", 1), make_id("00Q", 2)]
    text = soql.select_by_ids(["Id", "IsConverted"], "Lead", ids)
    assert text == f"SELECT Id, IsConverted FROM Lead WHERE Id IN ('{ids[0]}','{ids[1]}')"
    with pytest.raises(UsageError):
        soql.select_by_ids(["Id"], "Opportunity", ids)


def test_record_ids_validate_and_normalise() -> None:
    id18 = make_id("00Q", 7)
    assert soql.record_ids([id18[:15], id18], "Lead") == [id18]
    with pytest.raises(UsageError):
        soql.record_ids(["00Q' OR Id != '"], "Lead")
    with pytest.raises(UsageError):
        soql.record_ids([make_id("003", 1)], "Lead")


def _describe(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Contact", "fields": [{"name": "Id", "type": "id"}, *fields]}


def test_field_check_verdicts() -> None:
    ok = check_describe(
        "Contact",
        "hasoptedoutofemail",
        _describe(
            {
                "name": "HasOptedOutOfEmail",
                "type": "boolean",
                "updateable": True,
                "label": "Email Opt Out",
            }
        ),
    )
    assert ok.ok and ok.field == "HasOptedOutOfEmail" and ok.label == "Email Opt Out"
    missing = check_describe("Contact", "Sales_Opt_Out__c", _describe())
    assert not missing.ok and not missing.exists and missing.fix
    assert "package" in missing.fix and "field-level security" in missing.fix
    readonly = check_describe(
        "Contact", "X__c", _describe({"name": "X__c", "type": "boolean", "updateable": False})
    )
    assert readonly.exists and not readonly.ok and "read-only" in (readonly.problem or "")
    text = check_describe(
        "Contact", "X__c", _describe({"name": "X__c", "type": "string", "updateable": True})
    )
    assert not text.ok and text.type == "string" and "Checkbox" in (text.fix or "")
