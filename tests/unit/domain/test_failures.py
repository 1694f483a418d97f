"""The Salesforce failure table: one row per case, keyed on status and errorCode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optsync.domain import failures as f
from optsync.domain.failures import Classification, Outcome, classify, is_retryable, unfollowable

R, RS, FC, FM, PD, PE = (
    Outcome.RETRY,
    Outcome.RENEW_SESSION,
    Outcome.FOLLOW_CONVERSION,
    Outcome.FOLLOW_MERGE,
    Outcome.PAUSE_DAILY_LIMIT,
    Outcome.PERMANENT,
)

TABLE: list[tuple[int | None, str | None, str, Outcome, str, str]] = [
    # status, errorCode, message -> outcome, code, fix
    (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", PD,
     "REQUEST_LIMIT_EXCEEDED", f.FIX_DAILY_LIMIT),
    (403, "REQUEST_LIMIT_EXCEEDED",
     "ConcurrentRequests (Concurrent API Requests) Limit exceeded.", R,
     "REQUEST_LIMIT_EXCEEDED", f.FIX_CONCURRENT),
    (403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded", R,
     "REQUEST_LIMIT_EXCEEDED", f.FIX_CONCURRENT),
    (403, "REQUEST_LIMIT_EXCEEDED", "", R, "REQUEST_LIMIT_EXCEEDED", f.FIX_CONCURRENT),
    (401, "INVALID_SESSION_ID", "Session expired or invalid", RS, "INVALID_SESSION_ID",
     f.FIX_SESSION),
    (401, None, "", RS, "HTTP_401", f.FIX_SESSION),
    (503, "SERVER_UNAVAILABLE", "Server temporarily unavailable", R, "SERVER_UNAVAILABLE",
     f.FIX_UNAVAILABLE),
    (400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", R,
     "UNABLE_TO_LOCK_ROW", f.FIX_LOCK),
    (500, "UNABLE_TO_LOCK_ROW", "", R, "UNABLE_TO_LOCK_ROW", f.FIX_LOCK),
    (400, "QUERY_TIMEOUT", "Your query request was running for too long", R,
     "QUERY_TIMEOUT", f.FIX_QUERY_TIMEOUT),
    (None, None, "Read timed out", R, "NETWORK_ERROR", f.FIX_NETWORK),
    (None, None, "Connection refused", R, "NETWORK_ERROR", f.FIX_NETWORK),
    (500, None, "<html>Internal error</html>", R, "HTTP_500", f.FIX_SERVER),
    (502, None, "<html>Bad gateway</html>", R, "HTTP_502", f.FIX_SERVER),
    (504, None, "", R, "HTTP_504", f.FIX_SERVER),
    (408, None, "", R, "HTTP_408", f.FIX_SERVER),
    (429, None, "", R, "HTTP_429", f.FIX_SERVER),
    (500, "SOME_NEW_SERVER_CODE", "", R, "SOME_NEW_SERVER_CODE", f.FIX_SERVER),
    (400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", FC,
     "CANNOT_UPDATE_CONVERTED_LEAD", f.FIX_CONVERTED),
    (404, "ENTITY_IS_DELETED", "entity is deleted", FM, "ENTITY_IS_DELETED", f.FIX_DELETED),
    (400, "ENTITY_IS_DELETED", "entity is deleted", FM, "ENTITY_IS_DELETED", f.FIX_DELETED),
    (404, "NOT_FOUND", "The requested resource does not exist", PE, "NOT_FOUND",
     f.FIX_NOT_FOUND),
    (400, "MALFORMED_ID", "malformed id 003XYZ", PE, "MALFORMED_ID", f.FIX_MALFORMED_ID),
    (400, "INVALID_ID_FIELD", "invalid record id", PE, "INVALID_ID_FIELD",
     f.FIX_INVALID_ID_FIELD),
    (400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", PE,
     "INVALID_CROSS_REFERENCE_KEY", f.FIX_CROSS_REFERENCE),
    (400, "INVALID_FIELD", "No such column 'Sales_Opt_Out__c' on sobject of type Contact",
     PE, "INVALID_FIELD", f.FIX_INVALID_FIELD),
    (400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields", PE,
     "INVALID_FIELD_FOR_INSERT_UPDATE", f.FIX_FIELD_READ_ONLY),
    (400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights", PE,
     "INSUFFICIENT_ACCESS_OR_READONLY", f.FIX_NO_ACCESS),
    (403, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights", PE,
     "INSUFFICIENT_ACCESS_OR_READONLY", f.FIX_NO_ACCESS),
    (400, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "", PE,
     "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", f.FIX_NO_ACCESS),
    (400, "FIELD_INTEGRITY_EXCEPTION", "field integrity exception", PE,
     "FIELD_INTEGRITY_EXCEPTION", f.FIX_FIELD_INTEGRITY),
    (400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone is required", PE,
     "FIELD_CUSTOM_VALIDATION_EXCEPTION", f.FIX_VALIDATION_RULE),
    (400, "MALFORMED_QUERY", "unexpected token", PE, "MALFORMED_QUERY", f.FIX_BUG),
    (400, "INVALID_TYPE", "sObject type 'Contacts' is not supported", PE, "INVALID_TYPE",
     f.FIX_BUG),
    (400, "JSON_PARSER_ERROR", "", PE, "JSON_PARSER_ERROR", f.FIX_BUG),
    (400, "INVALID_QUERY_LOCATOR", "invalid query locator", PE, "INVALID_QUERY_LOCATOR",
     f.FIX_QUERY_LOCATOR),
    (400, "EXCEEDED_ID_LIMIT", "", PE, "EXCEEDED_ID_LIMIT", f.FIX_ID_LIMIT),
    # unknown codes fall back on the status class
    (400, "SOME_NEW_CLIENT_CODE", "", PE, "SOME_NEW_CLIENT_CODE", f.FIX_UNKNOWN_CLIENT),
    (400, None, "", PE, "HTTP_400", f.FIX_UNKNOWN_CLIENT),
    (403, None, "", PE, "HTTP_403", f.FIX_NO_ACCESS),
    (404, None, "", PE, "HTTP_404", f.FIX_NOT_FOUND),
    (405, None, "", PE, "HTTP_405", f.FIX_BUG),
    (409, None, "", PE, "HTTP_409", f.FIX_BUG),
    (410, None, "", PE, "HTTP_410", f.FIX_BUG),
    (412, None, "", PE, "HTTP_412", f.FIX_BUG),
    (415, None, "", PE, "HTTP_415", f.FIX_BUG),
    (302, None, "", PE, "HTTP_302", f.FIX_BUG),
    # the code is normalised
    (400, " invalid_field ", "", PE, "INVALID_FIELD", f.FIX_INVALID_FIELD),
    (403, "request_limit_exceeded", "totalrequests limit exceeded", PD,
     "REQUEST_LIMIT_EXCEEDED", f.FIX_DAILY_LIMIT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "error_code", "message", "outcome", "code", "fix"),
    TABLE,
    ids=[f"{row[0]}-{row[1]}-{i}" for i, row in enumerate(TABLE)],
)
def test_classify_table(
    status: int | None,
    error_code: str | None,
    message: str,
    outcome: Outcome,
    code: str,
    fix: str,
) -> None:
    assert classify(status, error_code, message) == Classification(outcome, code, fix)


def test_every_code_in_the_table_is_covered_above() -> None:
    covered = {row[1].strip().upper() for row in TABLE if row[1]}
    assert set(f._BY_CODE) | {f.REQUEST_LIMIT_EXCEEDED} <= covered


def test_the_documented_fix_sentences() -> None:
    assert classify(400, "INVALID_FIELD").fix == (
        "Create the field on Contact and Lead (or install the package that provides it), "
        "add it to both page layouts and grant the integration user edit access in "
        "field-level security."
    )
    assert classify(404, "ENTITY_IS_DELETED").fix == (
        "The record was deleted in Salesforce. Restore it from the Recycle Bin, or link "
        "the person to its current record."
    )


@given(
    st.one_of(st.none(), st.integers(100, 599)),
    st.one_of(st.none(), st.text(max_size=40)),
    st.text(max_size=80),
)
def test_classify_is_total_and_always_gives_a_fix(
    status: int | None, error_code: str | None, message: str
) -> None:
    result = classify(status, error_code, message)
    assert isinstance(result.outcome, Outcome)
    assert result.code
    assert result.fix.endswith(".")


def test_unfollowable_turns_follow_outcomes_into_permanent() -> None:
    deleted = classify(404, "ENTITY_IS_DELETED")
    assert unfollowable(deleted) == Classification(PE, "ENTITY_IS_DELETED", f.FIX_DELETED)
    converted = classify(400, "CANNOT_UPDATE_CONVERTED_LEAD")
    assert unfollowable(converted).outcome is PE
    lock = classify(400, "UNABLE_TO_LOCK_ROW")
    assert unfollowable(lock) is lock


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [(R, True), (RS, True), (PD, True), (FC, False), (FM, False), (PE, False)],
)
def test_is_retryable(outcome: Outcome, expected: bool) -> None:
    assert is_retryable(Classification(outcome, "X", "fix.")) is expected
