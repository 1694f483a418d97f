"""The Salesforce failure table: what optsync must do about each error, as pure data.

Salesforce reports failures through an HTTP status *and* an ``errorCode``, and neither is
enough alone: a 403 can be "no access" (permanent) or "daily API limit reached" (wait
hours), and ``REQUEST_LIMIT_EXCEEDED`` itself means two different things depending on
its message ("TotalRequests" is the rolling 24-hour allocation, "ConcurrentRequests" is
momentary congestion). So :func:`classify` looks at all three, in one explicit table,
and every caller (push worker, nightly sync, setup checks) gets the same answer.

Each row also carries an admin-facing ``fix``: one sentence saying exactly what to
change in Salesforce. It is what the failure list and the run report show, so it must
be actionable without reading logs. Transient rows carry a fix too, for the case where
they persist long enough for a person to look.

Outcomes are grouped by what the caller does next (see :class:`Outcome`), not by
where the error came from; the retry timing itself is decided in
:mod:`optsync.domain.retry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What the caller does next."""

    RETRY = "retry"
    """Transient: send the same request again later, with backoff."""
    RENEW_SESSION = "renew_session"
    """The access token expired or was revoked: mint a new one, then retry."""
    FOLLOW_CONVERSION = "follow_conversion"
    """The Lead was converted: retarget to its ``ConvertedContactId``."""
    FOLLOW_MERGE = "follow_merge"
    """The record is deleted: retarget to its ``MasterRecordId`` if it was merged."""
    PAUSE_DAILY_LIMIT = "pause_daily_limit"
    """The org's rolling 24-hour API allocation is used up: pause all calls."""
    PERMANENT = "permanent"
    """Retrying cannot help: stop and show the fix to an admin."""


@dataclass(frozen=True)
class Classification:
    """The verdict on one failure.

    ``code`` is Salesforce's ``errorCode`` (upper-cased), or a synthetic code when there
    was none (``NETWORK_ERROR``, ``HTTP_503``) so reports can group every failure by a
    code. ``fix`` is the admin-facing sentence.
    """

    outcome: Outcome
    code: str
    fix: str


# -- synthetic codes -----------------------------------------------------------------

NETWORK_ERROR = "NETWORK_ERROR"
"""No HTTP status at all: connection refused/reset, DNS failure, TLS error, timeout."""


def http_code(status: int) -> str:
    """The synthetic code used when a response carried no ``errorCode``."""
    return f"HTTP_{status}"


# -- fix sentences -------------------------------------------------------------------

FIX_INVALID_FIELD = (
    "Create the field on Contact and Lead (or install the package that provides it), "
    "add it to both page layouts and grant the integration user edit access in "
    "field-level security."
)
FIX_FIELD_READ_ONLY = (
    "In Setup, open the field on Contact and Lead, click Set Field-Level Security and "
    "make it visible and editable (not read-only) for the integration user's profile or "
    "permission set."
)
FIX_NO_ACCESS = (
    "Give the integration user Read and Edit permission on Contact and Lead in its "
    "profile or permission set, and make sure sharing rules give it edit access to "
    "this record (or grant Modify All Data)."
)
FIX_DELETED = (
    "The record was deleted in Salesforce. Restore it from the Recycle Bin, or link the "
    "person to its current record."
)
FIX_NOT_FOUND = (
    "The record no longer exists in Salesforce (it was deleted and purged, or the id "
    "belongs to another org). Link the person to its current Contact or Lead id."
)
FIX_MALFORMED_ID = (
    "The stored Salesforce id is not a valid Contact or Lead id. Copy the 18-character "
    "id from the record's URL in Salesforce and link the person to it again."
)
FIX_CROSS_REFERENCE = (
    "The id refers to a record that does not exist or that the integration user cannot "
    "see. Check the id on the person, and that the integration user can view the "
    "record."
)
FIX_INVALID_ID_FIELD = (
    "The stored Salesforce id was rejected as a record id. Copy the 18-character id from "
    "the record's URL in Salesforce and link the person to it again."
)
FIX_FIELD_INTEGRITY = (
    "Salesforce rejected the value for a data-integrity rule on this record. Open the "
    "record in Salesforce, correct the field named in the message, then press Retry on "
    "the person's page (or run `optsync push retry --email ADDRESS`)."
)
FIX_VALIDATION_RULE = (
    "A validation rule on Contact or Lead blocked the update. Change the rule so it "
    "allows the opt-out field to be set (for example, bypass it for the integration "
    "user), or fix the record it complains about."
)
FIX_CONVERTED = (
    "The Lead was converted. Link the person to the Contact it became (its Converted "
    "Contact), or give the integration user the 'View and Edit Converted Leads' "
    "permission."
)
FIX_SESSION = (
    "Salesforce keeps rejecting the access token. Reconnect Salesforce in Settings and "
    "check that the connected app is still approved for the integration user."
)
FIX_DAILY_LIMIT = (
    "The org has used its rolling 24-hour API allocation. Pushes resume automatically "
    "as the allocation frees up; to avoid this, lower optsync's API share or ask "
    "Salesforce for a higher limit."
)
FIX_CONCURRENT = (
    "Too many long-running API requests are open in the org at once. optsync backs off "
    "and retries; if it persists, find the integration running long requests in Setup."
)
FIX_UNAVAILABLE = (
    "Salesforce is unavailable (maintenance or an outage). optsync retries "
    "automatically; check status.salesforce.com if it lasts."
)
FIX_LOCK = (
    "Another process keeps this record locked (often a bulk job, flow or trigger on "
    "the same Account). optsync retries automatically; if it persists, look for "
    "long-running automation on the record."
)
FIX_QUERY_TIMEOUT = (
    "The query ran too long in Salesforce. optsync retries; if it persists, ask "
    "Salesforce support to index the opt-out field or use a smaller batch."
)
FIX_NETWORK = (
    "optsync could not reach Salesforce (network error or timeout). It retries "
    "automatically; check the network path and the instance URL if it persists."
)
FIX_SERVER = (
    "Salesforce answered with a server error. optsync retries automatically; check "
    "status.salesforce.com if it lasts."
)
FIX_BUG = (
    "optsync sent a request Salesforce does not understand. Please report it with the "
    "message; nothing needs changing in Salesforce."
)
FIX_QUERY_LOCATOR = (
    "The query's cursor expired in Salesforce; run the sync again (it restarts the query)."
)
FIX_ID_LIMIT = (
    "Too many records changed in the requested window. Run a full nightly sync instead "
    "of an incremental one."
)
FIX_UNKNOWN_CLIENT = (
    "Salesforce rejected the request. Read the message, correct the record or the "
    "integration user's permissions in Salesforce, then press Retry on the person's page "
    "(or run `optsync push retry --email ADDRESS`)."
)


# -- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    outcome: Outcome
    fix: str


_BY_CODE: dict[str, _Row] = {
    # transient
    "SERVER_UNAVAILABLE": _Row(Outcome.RETRY, FIX_UNAVAILABLE),
    "UNABLE_TO_LOCK_ROW": _Row(Outcome.RETRY, FIX_LOCK),
    "QUERY_TIMEOUT": _Row(Outcome.RETRY, FIX_QUERY_TIMEOUT),
    # re-authenticate
    "INVALID_SESSION_ID": _Row(Outcome.RENEW_SESSION, FIX_SESSION),
    # retarget
    "CANNOT_UPDATE_CONVERTED_LEAD": _Row(Outcome.FOLLOW_CONVERSION, FIX_CONVERTED),
    "ENTITY_IS_DELETED": _Row(Outcome.FOLLOW_MERGE, FIX_DELETED),
    # permanent: the record, the id, the field or the user's access is wrong
    "NOT_FOUND": _Row(Outcome.PERMANENT, FIX_NOT_FOUND),
    "MALFORMED_ID": _Row(Outcome.PERMANENT, FIX_MALFORMED_ID),
    "INVALID_ID_FIELD": _Row(Outcome.PERMANENT, FIX_INVALID_ID_FIELD),
    "INVALID_CROSS_REFERENCE_KEY": _Row(Outcome.PERMANENT, FIX_CROSS_REFERENCE),
    "INVALID_FIELD": _Row(Outcome.PERMANENT, FIX_INVALID_FIELD),
    "INVALID_FIELD_FOR_INSERT_UPDATE": _Row(Outcome.PERMANENT, FIX_FIELD_READ_ONLY),
    "INSUFFICIENT_ACCESS_OR_READONLY": _Row(Outcome.PERMANENT, FIX_NO_ACCESS),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": _Row(Outcome.PERMANENT, FIX_NO_ACCESS),
    "FIELD_INTEGRITY_EXCEPTION": _Row(Outcome.PERMANENT, FIX_FIELD_INTEGRITY),
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": _Row(Outcome.PERMANENT, FIX_VALIDATION_RULE),
    # permanent: optsync built a bad request (a bug, not an admin's doing)
    "MALFORMED_QUERY": _Row(Outcome.PERMANENT, FIX_BUG),
    "INVALID_TYPE": _Row(Outcome.PERMANENT, FIX_BUG),
    "JSON_PARSER_ERROR": _Row(Outcome.PERMANENT, FIX_BUG),
    "INVALID_QUERY_LOCATOR": _Row(Outcome.PERMANENT, FIX_QUERY_LOCATOR),
    "EXCEEDED_ID_LIMIT": _Row(Outcome.PERMANENT, FIX_ID_LIMIT),
}
"""Codes whose meaning does not depend on the status (Salesforce is not consistent
about the status for some of them, e.g. ``UNABLE_TO_LOCK_ROW`` arrives as 400 or 500,
``INSUFFICIENT_ACCESS_OR_READONLY`` as 400 or 403)."""

REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
_DAILY_LIMIT_MARKERS = ("totalrequests",)
_CONCURRENT_MARKERS = ("concurrentrequests", "concurrentperorglongtxn")


def classify(status: int | None, error_code: str | None, message: str = "") -> Classification:
    """Classify one failure by HTTP status, ``errorCode`` and (for limits) the message.

    ``status`` is ``None`` when no HTTP response arrived (network error, timeout);
    ``error_code`` is ``None`` when the body had none (gateway HTML, empty body). The
    function is total: any input yields a classification, falling back on the status
    class (4xx permanent, 5xx and no response transient), so an error code Salesforce
    adds tomorrow is handled safely today.
    """
    code = (error_code or "").strip().upper()

    if code == REQUEST_LIMIT_EXCEEDED:
        return _classify_limit(message)
    row = _BY_CODE.get(code)
    if row is not None:
        return Classification(row.outcome, code, row.fix)

    if status is None:
        # No response at all: the request may or may not have reached Salesforce.
        # Pushes are idempotent (setting a checkbox to true), so retrying is safe.
        return Classification(Outcome.RETRY, code or NETWORK_ERROR, FIX_NETWORK)
    if status == 401:
        # Salesforce only answers 401 for a bad session, whatever the body says.
        return Classification(Outcome.RENEW_SESSION, code or http_code(status), FIX_SESSION)
    if status == 408 or status == 429:
        return Classification(Outcome.RETRY, code or http_code(status), FIX_SERVER)
    if status >= 500:
        return Classification(Outcome.RETRY, code or http_code(status), FIX_SERVER)
    if status >= 400:
        return Classification(Outcome.PERMANENT, code or http_code(status), _fix_for_4xx(status))
    # A 1xx/2xx/3xx handed to us as a failure (e.g. an unexpected redirect to a login
    # page) is not something a retry will change.
    return Classification(Outcome.PERMANENT, code or http_code(status), FIX_BUG)


def _classify_limit(message: str) -> Classification:
    """``REQUEST_LIMIT_EXCEEDED`` is two different errors told apart by the message.

    The daily allocation is rolling 24 hours, so retrying in seconds only burns the
    requests that are trickling back; the caller pauses instead. Anything that is not
    recognisably the daily limit (concurrency, or a message we have not seen) is
    treated as momentary and retried with backoff, which is capped and cheap.
    """
    lowered = message.lower()
    if any(marker in lowered for marker in _DAILY_LIMIT_MARKERS):
        return Classification(Outcome.PAUSE_DAILY_LIMIT, REQUEST_LIMIT_EXCEEDED, FIX_DAILY_LIMIT)
    return Classification(Outcome.RETRY, REQUEST_LIMIT_EXCEEDED, FIX_CONCURRENT)


def _fix_for_4xx(status: int) -> str:
    if status == 403:
        return FIX_NO_ACCESS
    if status == 404:
        return FIX_NOT_FOUND
    if status in (405, 409, 410, 412, 415):
        # method not allowed / version conflict / retired API version / precondition /
        # media type: all mean optsync's request is wrong, not the org.
        return FIX_BUG
    return FIX_UNKNOWN_CLIENT


def unfollowable(classification: Classification) -> Classification:
    """The verdict to report when a ``FOLLOW_*`` failure cannot be followed.

    A deleted record without a ``MasterRecordId`` was deleted rather than merged, and a
    converted Lead without a usable ``ConvertedContactId`` has nowhere to go; both then
    need an admin, with the row's fix. Other outcomes are returned unchanged.
    """
    if classification.outcome in (Outcome.FOLLOW_CONVERSION, Outcome.FOLLOW_MERGE):
        return Classification(Outcome.PERMANENT, classification.code, classification.fix)
    return classification


def is_retryable(classification: Classification) -> bool:
    """True when sending the *same* request again may succeed (after waiting/renewing)."""
    return classification.outcome in (
        Outcome.RETRY,
        Outcome.RENEW_SESSION,
        Outcome.PAUSE_DAILY_LIMIT,
    )
