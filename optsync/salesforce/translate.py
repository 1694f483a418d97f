"""Turning Salesforce's answers into optsync's results and errors, as pure code.

A call-level failure (a simple-salesforce ``SalesforceError`` or a ``requests``
exception) becomes one :class:`SalesforceCallError` classified by the shared failure
table; each record of an sObject Collections answer becomes a classified
:class:`RecordResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError

from optsync.domain.failures import Classification, classify
from optsync.domain.ids import InvalidSalesforceId, record_object, to_18
from optsync.salesforce.errors import SalesforceCallError

CALL_STATUS = 400
"""Status used to classify per-record errors: the call itself succeeded (200), and an
unknown per-record code must read as 'the request was refused', never as a network
error."""


@dataclass(frozen=True)
class Target:
    """One record to opt out: an 18-character id and its object (Contact, Lead or Account,
    a Person Account)."""

    salesforce_id: str
    object: str


@dataclass(frozen=True)
class RecordResult:
    """The outcome for one :class:`Target`, in input order."""

    salesforce_id: str
    success: bool
    code: str | None = None
    message: str | None = None
    classification: Classification | None = None


def call_error(exc: Exception) -> SalesforceCallError:
    """A :class:`SalesforceCallError` for a simple-salesforce or ``requests`` failure."""
    if isinstance(exc, SalesforceError):
        code, message = _first_error(exc.content)
        status = int(exc.status) if exc.status is not None else None
        return SalesforceCallError(
            classify(status, code, message), status, message or f"HTTP {status}"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return SalesforceCallError(classify(None, None), None, "the request timed out")
    return SalesforceCallError(
        classify(None, None), None, f"no response from Salesforce ({type(exc).__name__})"
    )


def _first_error(content: Any) -> tuple[str | None, str]:
    """``errorCode``/``message`` from a REST error body (a list), or the text's start."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return (
            str(first.get("errorCode")) if first.get("errorCode") else None,
            str(first.get("message") or ""),
        )
    if isinstance(content, dict):
        return (
            str(content.get("errorCode")) if content.get("errorCode") else None,
            str(content.get("message") or ""),
        )
    text = str(content or "").strip()
    return None, " ".join(text.split())[:200]


def valid_target(target: Target) -> str | None:
    try:
        id18 = to_18(target.salesforce_id)
        return id18 if record_object(id18) == target.object else None
    except InvalidSalesforceId:
        return None


def malformed(target: Target) -> RecordResult:
    message = f"{target.salesforce_id!r} is not a valid {target.object} id"
    return RecordResult(
        target.salesforce_id,
        False,
        "MALFORMED_ID",
        message,
        classify(CALL_STATUS, "MALFORMED_ID", message),
    )


def record_result(id18: str, item: Any) -> RecordResult:
    if isinstance(item, dict) and item.get("success"):
        return RecordResult(id18, True)
    errors = item.get("errors") if isinstance(item, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "")
    return RecordResult(id18, False, code, message, classify(CALL_STATUS, code, message))


def with_id(result: RecordResult, salesforce_id: str) -> RecordResult:
    return RecordResult(
        salesforce_id, result.success, result.code, result.message, result.classification
    )
