"""``SalesforceGateway``: the one thin adapter optsync uses for every Salesforce call.

It owns one connection's HTTP session and access token and turns simple-salesforce's
behaviour into optsync's contract:

* **Session renewal.** simple-salesforce cannot refresh a token it was handed
  (``session_id`` mode), so on a 401 ``INVALID_SESSION_ID`` the gateway mints a new token
  itself, rebuilds the client and repeats the call in flight once. That is the only
  retry here: backoff for transient failures is the caller's decision
  (:mod:`optsync.domain.retry`), because only the caller knows its budget and deadline.
* **One failure type.** Call-level failures become :class:`SalesforceCallError` with the
  verdict of :func:`optsync.domain.failures.classify`; per-record failures of a batch
  update come back as classified :class:`RecordResult` values. Token refusals raise
  :class:`SalesforceAuthError` (permanent: a setting is wrong).
* **Counting.** Every request that reaches the REST API is counted, in total and per
  endpoint, so sync reports and the API-budget guard can say what a run cost. A request
  rejected with 401 is not counted (Salesforce does not charge it against the daily
  allocation); one that got no response is (it may have been).
* **Timeouts.** Every call passes ``timeout=`` explicitly (the HTTP session has the same
  default as a second line of defence).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from optsync.domain.failures import Classification, Outcome, classify
from optsync.domain.ids import InvalidSalesforceId, object_type, to_18
from optsync.domain.retry import Jitter, RetryPolicy, backoff_delay
from optsync.errors import UsageError
from optsync.salesforce import soql
from optsync.salesforce.auth import Token, fetch_token
from optsync.salesforce.connection import ConnectionConfig, resolve_connection
from optsync.salesforce.errors import SalesforceAuthUnavailable, SalesforceCallError
from optsync.salesforce.fields import FieldCheck, check_describe
from optsync.salesforce.http import DEFAULT_TIMEOUT, Timeout, build_session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from optsync.bootstrap import Context
    from optsync.settings import Settings

T = TypeVar("T")

__all__ = [
    "BATCH_SIZE",
    "NO_CONNECTION",
    "FieldCheck",
    "RecordResult",
    "SalesforceCallError",
    "SalesforceGateway",
    "Target",
    "call_error",
    "from_settings",
    "open_gateway",
]

BATCH_SIZE = 200
"""Records per sObject Collections call (the API maximum)."""
_CALL_STATUS = 400
"""Status used to classify per-record errors: the call itself succeeded (200), and an
unknown per-record code must read as 'the request was refused', never as a network
error."""

NO_CONNECTION = "no Salesforce connection; run `optsync salesforce connect`"


@dataclass(frozen=True)
class Target:
    """One record to opt out: an 18-character id and its object (Contact or Lead)."""

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


class _SessionExpired(Exception):
    def __init__(self, error: SalesforceCallError):
        super().__init__(str(error))
        self.error = error


LONG_JOB_RETRIES = 4
"""Transient-failure retries per call for long jobs (sync runs, pulls): with backoff of
0.5-8 s they ride out a short Salesforce blip instead of failing the whole job."""


class SalesforceGateway:
    """Every Salesforce call optsync makes, over one connection."""

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        http: requests.Session | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        retries: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config
        self.timeout = timeout
        self.retries = retries
        self.retry_policy = RetryPolicy(base_s=0.5, cap_s=8.0, jitter=Jitter.EQUAL)
        self._sleep = sleep
        self.http = http or build_session(ca_bundle=config.ca_bundle, timeout=timeout)
        self.api_calls = 0
        self.calls_by_endpoint: Counter[str] = Counter()
        self.session_renewals = 0
        self._token: Token | None = None
        self._client: Salesforce | None = None
        self._usage: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SalesforceGateway(login_url={self.config.login_url!r}, auth={self.config.auth!r})"

    # -- session ------------------------------------------------------------------
    @property
    def instance_url(self) -> str | None:
        return self._token.instance_url if self._token else None

    @property
    def token(self) -> Token | None:
        return self._token

    def connect(self) -> Token:
        """Make sure a token is held (minting one if none is), e.g. to test a connection."""
        self._renew(None)
        assert self._token is not None
        return self._token

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SalesforceGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _renew(self, stale: Salesforce | None) -> Salesforce:
        """A client with a fresh token; concurrent callers renew only once per expiry."""
        with self._lock:
            if self._client is not None and self._client is not stale:
                return self._client
            try:
                token = fetch_token(self.config, self.http)
            except SalesforceAuthUnavailable as exc:
                raise SalesforceCallError(classify(None, None), None, str(exc)) from None
            if stale is not None:
                self.session_renewals += 1
            self._token = token
            self._client = Salesforce(
                instance_url=token.instance_url,
                session_id=token.access_token,
                session=self.http,
                version=self.config.api_version,
                object_pairs_hook=dict,
            )
            return self._client

    def _current(self) -> Salesforce:
        client = self._client
        return client if client is not None else self._renew(None)

    # -- the call wrapper ---------------------------------------------------------
    def call(self, endpoint: str, fn: Callable[[Salesforce], T]) -> T:
        """Run one API request ``fn(client)``; on an expired session renew once and repeat.

        The extension point for adapters built on the gateway (Bulk 2.0): ``fn`` must make
        exactly one HTTP request and may run again (after a renewal, or a transient failure
        when ``retries`` is set), so it must be safe to repeat (rewind any streamed body).
        ``endpoint`` names it in the counters.

        With ``retries`` (long jobs: a sync run, a pull), a transient failure (timeout,
        5xx, lock, concurrent-request limit) is retried with exponential backoff and
        jitter up to ``retries`` times before it is raised; the push worker keeps
        ``retries=0`` because its outbox retries each record on its own schedule.
        """
        attempt = 0
        while True:
            try:
                return self._call_once(endpoint, fn)
            except SalesforceCallError as exc:
                if attempt >= self.retries or exc.outcome is not Outcome.RETRY:
                    raise
                attempt += 1
                self._sleep(backoff_delay(self.retry_policy, attempt, random.random))

    def _call_once(self, endpoint: str, fn: Callable[[Salesforce], T]) -> T:
        client = self._current()
        try:
            return self._attempt(endpoint, client, fn)
        except _SessionExpired:
            client = self._renew(client)
        try:
            return self._attempt(endpoint, client, fn)
        except _SessionExpired as again:
            raise again.error from None

    _call = call  # the name adapters written before ``call`` was public use

    def request(self, endpoint: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One raw REST request to ``/services/data/vXX.X/<path>`` (counted, renewed,
        translated), for callers that need headers or a non-JSON body."""
        kwargs.setdefault("timeout", self.timeout)

        def send(sf: Salesforce) -> requests.Response:
            response: requests.Response = sf._call_salesforce(
                method, sf.base_url + path, name=path, **kwargs
            )
            return response

        return self.call(endpoint, send)

    def _attempt(self, endpoint: str, client: Salesforce, fn: Callable[[Salesforce], T]) -> T:
        try:
            result = fn(client)
        except SalesforceError as exc:
            error = call_error(exc)
            if error.status == 401:
                raise _SessionExpired(error) from None
            self._count(endpoint)
            raise error from None
        except requests.exceptions.RequestException as exc:
            self._count(endpoint)
            raise call_error(exc) from None
        except ValueError:
            # A 2xx whose body is not JSON: an intercepting proxy or a truncated answer.
            self._count(endpoint)
            raise SalesforceCallError(
                classify(None, "INVALID_RESPONSE"),
                None,
                "Salesforce's answer could not be read as JSON",
            ) from None
        self._count(endpoint)
        usage = client.api_usage.get("api-usage")
        if usage is not None:
            self._usage = (int(usage.used), int(usage.total))
        return result

    def _count(self, endpoint: str) -> None:
        # the pusher sends several composite calls at once from worker threads
        with self._count_lock:
            self.api_calls += 1
            self.calls_by_endpoint[endpoint] += 1

    # -- describe -----------------------------------------------------------------
    def describe(self, obj: str) -> dict[str, Any]:
        """The object's describe, as the integration user sees it (FLS applied)."""
        obj = soql.object_name(obj)
        path = f"sobjects/{obj}/describe"
        result = self.call(path, lambda sf: sf.restful(path, timeout=self.timeout))
        return dict(result or {})

    def check_field(self, field: str) -> list[FieldCheck]:
        """Is ``field`` a checkbox the integration user can update, on Contact and Lead?"""
        soql.field_name(field)
        return [check_describe(obj, field, self.describe(obj)) for obj in soql.OBJECTS]

    def get_record(
        self, object: str, salesforce_id: str, fields: Sequence[str]
    ) -> dict[str, Any] | None:
        """The record's ``Id`` and ``fields``, or ``None`` when it is deleted or missing."""
        obj = soql.object_name(object)
        [id18] = soql.record_ids([salesforce_id], obj)
        wanted = [soql.field_name(f) for f in fields]
        names = ",".join(["Id", *(f for f in wanted if f.lower() != "id")])
        path = f"sobjects/{obj}/{id18}"
        try:
            result = self.call(
                f"sobjects/{obj}/{{id}}",
                lambda sf: sf.restful(path, params={"fields": names}, timeout=self.timeout),
            )
        except SalesforceCallError as exc:
            if exc.code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
                return None
            raise
        return dict(result or {})

    # -- writes -------------------------------------------------------------------
    def set_opt_out(self, targets: Sequence[Target], field: str) -> list[RecordResult]:
        """Set ``field`` to true on every target; one classified result per target.

        Invalid targets (bad id, object not matching the id's prefix) fail locally as
        ``MALFORMED_ID`` without a call. Duplicate ids are sent once. Up to 200 records
        go in each call with ``allOrNone: false``, Contacts before Leads so a call never
        exceeds Salesforce's 10-chunk rule. A call-level failure raises
        :class:`SalesforceCallError`; calls already made stay applied (setting a
        checkbox to true is idempotent, so the caller may simply retry everything).
        """
        soql.field_name(field)
        local: dict[int, RecordResult] = {}
        unique: dict[str, str] = {}  # id18 -> object, first occurrence order
        keys: list[str | None] = []
        for i, target in enumerate(targets):
            id18 = _valid_target(target)
            if id18 is None:
                local[i] = _malformed(target)
                keys.append(None)
                continue
            unique.setdefault(id18, target.object)
            keys.append(id18)
        outcome: dict[str, RecordResult] = {}
        pending = list(unique.items())
        for start in range(0, len(pending), BATCH_SIZE):
            batch = sorted(
                pending[start : start + BATCH_SIZE], key=lambda item: soql.OBJECTS.index(item[1])
            )
            outcome.update(self._update_batch(batch, field))
        results: list[RecordResult] = []
        for i, key in enumerate(keys):
            if key is None:
                results.append(local[i])
            else:
                r = outcome[key]
                results.append(
                    r
                    if r.salesforce_id == targets[i].salesforce_id
                    else _with_id(r, targets[i].salesforce_id)
                )
        return results

    def _update_batch(self, batch: list[tuple[str, str]], field: str) -> dict[str, RecordResult]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": obj}, "id": id18, field: True} for id18, obj in batch
            ],
        }
        path = "composite/sobjects"
        answer = self.call(
            path, lambda sf: sf.restful(path, method="PATCH", json=payload, timeout=self.timeout)
        )
        if not isinstance(answer, list) or len(answer) != len(batch):
            raise SalesforceCallError(
                classify(200, "UNEXPECTED_RESPONSE"),
                200,
                "sObject Collections answered with a result list of the wrong shape",
            )
        out: dict[str, RecordResult] = {}
        for (id18, _obj), item in zip(batch, answer, strict=True):
            out[id18] = _record_result(id18, item)
        return out

    # -- reads --------------------------------------------------------------------
    def _query_pages(
        self, query: str, *, include_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, page by page, each page one counted call that
        survives a session renewal (the query cursor outlives the token)."""
        endpoint = "queryAll" if include_deleted else "query"
        page = self.call(
            endpoint,
            lambda sf: sf.query(query, include_deleted=include_deleted, timeout=self.timeout),
        )
        while True:
            yield from page.get("records", [])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.call(endpoint, self._more(str(page["nextRecordsUrl"])))

    def _more(self, url: str) -> Callable[[Salesforce], Any]:
        def fetch(sf: Salesforce) -> Any:
            return sf.query_more(url, identifier_is_url=True, timeout=self.timeout)

        return fetch

    def converted_contacts(self, lead_ids: Sequence[str]) -> dict[str, str | None]:
        """For each Lead id (18-char form): its ``ConvertedContactId`` if converted, else None.

        Leads that are not found (deleted, purged, other org) map to ``None`` too.
        """
        ids = soql.record_ids(lead_ids, "Lead")
        out: dict[str, str | None] = dict.fromkeys(ids)
        for chunk in soql.chunks(ids):
            query = soql.select_by_ids(["Id", "IsConverted", "ConvertedContactId"], "Lead", chunk)
            for rec in self._query_pages(query):
                rid = to_18(rec["Id"])
                out[rid] = rec.get("ConvertedContactId") if rec.get("IsConverted") else None
        return out

    def merged_masters(self, ids: Sequence[str], object: str) -> dict[str, str | None]:
        """For each id: the ``MasterRecordId`` it was merged into, or None (queryAll)."""
        obj = soql.object_name(object)
        ids18 = soql.record_ids(ids, obj)
        out: dict[str, str | None] = dict.fromkeys(ids18)
        for chunk in soql.chunks(ids18):
            query = soql.select_by_ids(
                ["Id", "IsDeleted", "MasterRecordId"], obj, chunk, where="IsDeleted = true"
            )
            for rec in self._query_pages(query, include_deleted=True):
                out[to_18(rec["Id"])] = rec.get("MasterRecordId") or None
        return out

    def iter_people(self, object: str) -> Iterator[dict[str, Any]]:
        """Every record of ``object`` that has an email (unconverted Leads only), with
        ``Id, Email, FirstName, LastName``; REST pages of up to 2,000 records.

        The query is :func:`optsync.salesforce.soql.people_query`, shared with the Bulk
        path of ``persons pull``; its result does not depend on the ``ORDER BY Id``."""
        yield from self._query_pages(f"{soql.people_query(object)} ORDER BY Id")

    def query_opted_out(self, object: str, field: str) -> Iterator[str]:
        """Ids of the object's records with ``field`` true (unconverted Leads only)."""
        obj = soql.object_name(object)
        name = soql.field_name(field)
        query = f"SELECT Id FROM {obj} WHERE {name} = true"
        if obj == "Lead":
            query += " AND IsConverted = false"
        for rec in self._query_pages(query):
            yield str(rec["Id"])

    # -- limits -------------------------------------------------------------------
    def limits(self) -> dict[str, Any]:
        """``GET /limits``: the org's allocations (``DailyApiRequests`` …)."""
        return dict(self.call("limits", lambda sf: sf.limits(timeout=self.timeout)) or {})

    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the daily allocation from the last ``Sforce-Limit-Info`` seen."""
        return self._usage


# -- translation helpers ----------------------------------------------------------------


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


def _valid_target(target: Target) -> str | None:
    try:
        id18 = to_18(target.salesforce_id)
        return id18 if object_type(id18) == target.object else None
    except InvalidSalesforceId:
        return None


def _malformed(target: Target) -> RecordResult:
    message = f"{target.salesforce_id!r} is not a valid {target.object} id"
    return RecordResult(
        target.salesforce_id,
        False,
        "MALFORMED_ID",
        message,
        classify(_CALL_STATUS, "MALFORMED_ID", message),
    )


def _record_result(id18: str, item: Any) -> RecordResult:
    if isinstance(item, dict) and item.get("success"):
        return RecordResult(id18, True)
    errors = item.get("errors") if isinstance(item, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    message = str(first.get("message") or "")
    return RecordResult(id18, False, code, message, classify(_CALL_STATUS, code, message))


def _with_id(result: RecordResult, salesforce_id: str) -> RecordResult:
    return RecordResult(
        salesforce_id, result.success, result.code, result.message, result.classification
    )


# -- construction -----------------------------------------------------------------------


def from_settings(
    settings: Settings, db_session: Session, *, retries: int = 0
) -> SalesforceGateway:
    """The gateway for the connection in force (``OPTSYNC_SF_*`` win over the stored one)."""
    config = resolve_connection(settings, db_session)
    if config is None:
        raise UsageError(NO_CONNECTION, field="salesforce")
    return SalesforceGateway(config, retries=retries)


def open_gateway(ctx: Context, *, retries: int = 0) -> SalesforceGateway:
    """:func:`from_settings` for a command, web request or worker context."""
    with ctx.db.transaction() as session:
        return from_settings(ctx.settings, session, retries=retries)
