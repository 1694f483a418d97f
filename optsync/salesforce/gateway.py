"""``SalesforceGateway``: the one thin adapter optsync uses for every Salesforce call.

It owns one connection's HTTP session and access token and turns simple-salesforce's
behaviour into optsync's contract:

* **One builder, named profiles.** :func:`build_gateway` (a configuration in hand) and
  :func:`open_gateway` (the connection in force) are how optsync gets a gateway; the
  :class:`~optsync.salesforce.profiles.Profile` (``page``, ``job``, ``push``) fixes its
  timeouts and retries. :func:`open_gateway` reads the connection in a transaction of
  its own that is closed before it returns: no database transaction is ever open while
  the gateway talks to Salesforce.
* **Session renewal.** simple-salesforce cannot refresh a token it was handed
  (``session_id`` mode), so on a 401 ``INVALID_SESSION_ID`` the gateway mints a new token
  itself, rebuilds the client and repeats the call in flight once.
* **Retries per profile.** A transient failure is retried up to the profile's
  ``retries`` with backoff and jitter, never sooner than the answer's ``Retry-After``;
  the ``push`` profile retries nothing here (its outbox schedules each record).
* **One failure type.** Call-level failures become :class:`SalesforceCallError` with the
  verdict of :func:`optsync.domain.failures.classify` (:mod:`optsync.salesforce.translate`);
  per-record failures of a batch update come back as classified :class:`RecordResult`
  values. Token refusals raise :class:`SalesforceAuthError` (permanent: a setting is wrong).
* **Counting.** Every request that reaches the REST API is counted, in total, per
  endpoint and in ``optsync_salesforce_api_calls_total{purpose=<profile>}``, so sync
  reports, the API-budget guard and monitoring can say what work cost. A request
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
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError

from optsync.domain.failures import Outcome, classify
from optsync.domain.ids import to_18
from optsync.domain.retry import Jitter, RetryPolicy, backoff_delay
from optsync.errors import UsageError
from optsync.metrics import API_CALLS
from optsync.salesforce import soql
from optsync.salesforce.auth import Token, fetch_token
from optsync.salesforce.config import ConnectionConfig
from optsync.salesforce.connection import resolve_connection
from optsync.salesforce.errors import SalesforceAuthUnavailable, SalesforceCallError
from optsync.salesforce.fields import FieldCheck, check_describe
from optsync.salesforce.http import SalesforceHTTP, Timeout, build_session
from optsync.salesforce.lookup import (
    FoundRecord,
    lookup_queries,
    lookup_request,
    parse_records,
    plan_batches,
)
from optsync.salesforce.profiles import LONG_JOB_RETRIES, PROFILES, Profile
from optsync.salesforce.translate import (
    RecordResult,
    Target,
    call_error,
    malformed,
    record_result,
    valid_target,
    with_id,
)
from optsync.salesforce.volume import opted_out_query

if TYPE_CHECKING:
    from optsync.bootstrap import Context

T = TypeVar("T")

__all__ = [
    "BATCH_SIZE",
    "LONG_JOB_RETRIES",
    "MAX_RETRY_AFTER_S",
    "NO_CONNECTION",
    "FieldCheck",
    "Profile",
    "RecordResult",
    "SalesforceCallError",
    "SalesforceGateway",
    "Target",
    "build_gateway",
    "call_error",
    "connection_in_force",
    "open_gateway",
]

BATCH_SIZE = 200
"""Records per sObject Collections call (the API maximum)."""
MAX_RETRY_AFTER_S = 120.0
"""The longest ``Retry-After`` a job's retry waits for; a longer one fails the call (the
job's own schedule, or the person at the page, decides what next)."""
NO_CONNECTION = "no Salesforce connection; run `optsync salesforce connect`"


class _SessionExpired(Exception):
    def __init__(self, error: SalesforceCallError):
        super().__init__(str(error))
        self.error = error


class SalesforceGateway:
    """Every Salesforce call optsync makes, over one connection."""

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        profile: Profile | str = Profile.PUSH,
        http: requests.Session | None = None,
        timeout: Timeout | None = None,
        retries: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """Prefer :func:`build_gateway`; ``timeout``/``retries`` override the profile's
        (tests use them)."""
        self.config = config
        self.profile = Profile(profile)
        spec = PROFILES[self.profile]
        self.timeout = timeout if timeout is not None else spec.timeout
        self.retries = retries if retries is not None else spec.retries
        self.token_attempts = spec.token_attempts
        self.retry_policy = RetryPolicy(base_s=0.5, cap_s=8.0, jitter=Jitter.EQUAL)
        self._sleep = sleep
        self.http = http or build_session(ca_bundle=config.ca_bundle, timeout=self.timeout)
        self.api_calls = 0
        self.calls_by_endpoint: Counter[str] = Counter()
        self.session_renewals = 0
        self._token: Token | None = None
        self._client: Salesforce | None = None
        self._usage: tuple[int, int] | None = None
        self._person_accounts: bool | None = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"SalesforceGateway(login_url={self.config.login_url!r}, "
            f"auth={self.config.auth!r}, profile={self.profile.value!r})"
        )

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

    def renew(self) -> Token:
        """Mint a new token now (a Pub/Sub call was refused as unauthenticated)."""
        self._renew(self._client)
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
                token = fetch_token(self.config, self.http, attempts=self.token_attempts)
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

        With ``retries`` (the ``job`` profile: a sync run, a pull), a transient failure
        (timeout, 5xx, lock, concurrent-request limit) is retried with exponential backoff
        and jitter up to ``retries`` times before it is raised, never sooner than the
        answer's ``Retry-After`` (a longer one than :data:`MAX_RETRY_AFTER_S` is raised
        at once); the ``push`` and ``page`` profiles retry nothing here.
        """
        attempt = 0
        while True:
            try:
                return self._call_once(endpoint, fn)
            except SalesforceCallError as exc:
                if attempt >= self.retries or exc.outcome is not Outcome.RETRY:
                    raise
                attempt += 1
                delay = backoff_delay(self.retry_policy, attempt, random.random)
                if exc.retry_after_s is not None:
                    if exc.retry_after_s > MAX_RETRY_AFTER_S:
                        raise
                    delay = max(delay, exc.retry_after_s)
                self._sleep(delay)

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
            if isinstance(self.http, SalesforceHTTP):
                error.retry_after_s = self.http.last_retry_after()
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
        API_CALLS.labels(purpose=self.profile.value).inc()

    # -- describe -----------------------------------------------------------------
    def describe(self, obj: str) -> dict[str, Any]:
        """The object's describe, as the integration user sees it (FLS applied). A
        describe of Contact or Account also answers :meth:`has_person_accounts`."""
        obj = soql.object_name(obj)
        path = f"sobjects/{obj}/describe"
        result = dict(self.call(path, lambda sf: sf.restful(path, timeout=self.timeout)) or {})
        if obj in ("Contact", "Account") and self._person_accounts is None:
            fields = result.get("fields") or []
            self._person_accounts = any(
                isinstance(f, dict) and f.get("name") == soql.PERSON_ACCOUNT for f in fields
            )
        return result

    def check_field(self, field: str, *, person_accounts: bool = False) -> list[FieldCheck]:
        """Is ``field`` a checkbox the integration user can update, on Contact and Lead?
        With ``person_accounts``, also its person form on Account when the org has Person
        Accounts (one more describe, only in such an org: the Contact describe says)."""
        soql.field_name(field)
        checks = [check_describe(obj, field, self.describe(obj)) for obj in soql.OBJECTS]
        if person_accounts and self.has_person_accounts():
            name = soql.record_field("Account", field)
            checks.append(check_describe("Account", name, self.describe("Account")))
        return checks

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
        go in each call with ``allOrNone: false``, Contacts, then Leads, then Person
        Accounts, so a call never exceeds Salesforce's 10-chunk rule. A Person Account is
        written on the Account with the field's person form
        (:func:`optsync.salesforce.soql.record_field`). A call-level failure raises
        :class:`SalesforceCallError`; calls already made stay applied (setting a
        checkbox to true is idempotent, so the caller may simply retry everything).
        """
        soql.field_name(field)
        local: dict[int, RecordResult] = {}
        unique: dict[str, str] = {}  # id18 -> object, first occurrence order
        keys: list[str | None] = []
        for i, target in enumerate(targets):
            id18 = valid_target(target)
            if id18 is None:
                local[i] = malformed(target)
                keys.append(None)
                continue
            unique.setdefault(id18, target.object)
            keys.append(id18)
        outcome: dict[str, RecordResult] = {}
        pending = list(unique.items())
        for start in range(0, len(pending), BATCH_SIZE):
            batch = sorted(
                pending[start : start + BATCH_SIZE],
                key=lambda item: soql.RECORD_OBJECTS.index(item[1]),
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
                    else with_id(r, targets[i].salesforce_id)
                )
        return results

    def _update_batch(self, batch: list[tuple[str, str]], field: str) -> dict[str, RecordResult]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": obj}, "id": id18, soql.record_field(obj, field): True}
                for id18, obj in batch
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
            out[id18] = record_result(id18, item)
        return out

    # -- records by address -------------------------------------------------------
    def has_person_accounts(self) -> bool:
        """Whether the org has Person Accounts (the Account and Contact describes have
        ``IsPersonAccount``); asked once per gateway, then cached: a gateway that already
        described Contact (the setup check does) asks nothing more."""
        if self._person_accounts is None:
            self.describe("Account")
        return bool(self._person_accounts)

    def find_records(self, emails: Sequence[str], field: str) -> list[FoundRecord]:
        """Every Contact, Lead (converted ones included, marked) and Person Account whose
        address is one of ``emails``, with the value of the synced ``field``.

        One ``POST /composite`` per batch of addresses (:mod:`optsync.salesforce.lookup`
        sizes them), holding one query subrequest per object; a result longer than a
        page is read on with ``query`` calls. Salesforce compares strings without regard
        to case, so the addresses' case does not matter. A Person Account's hidden
        PersonContact is not a Contact here (:func:`~optsync.salesforce.lookup.record_read`
        leaves it out). A subrequest that failed raises :class:`SalesforceCallError`
        classified from its error."""
        soql.field_name(field)
        if not emails:
            return []
        queries = lookup_queries(field, person_accounts=self.has_person_accounts())
        version = self.config.api_version
        found: list[FoundRecord] = []
        for batch in plan_batches(emails, queries, version):
            body = lookup_request(queries, batch, version)
            answer = self.call(
                "composite",
                lambda sf, body=body: sf.restful(  # type: ignore[misc]
                    "composite", method="POST", json=body, timeout=self.timeout
                ),
            )
            results = answer.get("compositeResponse") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(queries):
                raise SalesforceCallError(
                    classify(200, "UNEXPECTED_RESPONSE"),
                    200,
                    "Composite answered with a result list of the wrong shape",
                )
            for query, result in zip(queries, results, strict=True):
                found += parse_records(query, self._subrequest_rows(result))
        return found

    def _subrequest_rows(self, result: Any) -> list[dict[str, Any]]:
        status = int(result.get("httpStatusCode") or 0) if isinstance(result, dict) else 0
        body = result.get("body") if isinstance(result, dict) else None
        if status >= 300 or not isinstance(body, dict):
            content: Any = body
            raise call_error(SalesforceError("composite", status or 500, "query", content))
        rows = list(body.get("records") or [])
        page = body
        while not page.get("done", True) and page.get("nextRecordsUrl"):
            page = self.call("query", self._more(str(page["nextRecordsUrl"])))
            rows += page.get("records") or []
        return rows

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

    def query_records(self, query: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query built by optsync's code from checked names (REST
        pages of up to 2,000 records, one counted call each)."""
        yield from self._query_pages(query)

    def query_opted_out(self, object: str, field: str) -> Iterator[str]:
        """Ids of the object's records with ``field`` true (unconverted Leads only)."""
        for rec in self._query_pages(opted_out_query(object, field)):
            yield str(rec["Id"])

    # -- limits -------------------------------------------------------------------
    def limits(self) -> dict[str, Any]:
        """``GET /limits``: the org's allocations (``DailyApiRequests`` …)."""
        return dict(self.call("limits", lambda sf: sf.limits(timeout=self.timeout)) or {})

    def api_usage(self) -> tuple[int, int] | None:
        """(used, max) of the daily allocation from the last ``Sforce-Limit-Info`` seen."""
        return self._usage


# -- construction: the one builder -------------------------------------------------------


def build_gateway(
    config: ConnectionConfig, profile: Profile | str, *, http: requests.Session | None = None
) -> SalesforceGateway:
    """The gateway for ``config`` with the timeouts and retries of ``profile``."""
    return SalesforceGateway(config, profile=profile, http=http)


def connection_in_force(ctx: Context) -> ConnectionConfig | None:
    """The connection in force (``OPTSYNC_SF_*`` over the stored one), read in a short
    transaction of its own; ``None`` when there is none, :class:`UsageError` when it is
    incomplete or invalid."""
    with ctx.db.transaction() as session:
        return resolve_connection(ctx.settings, session)


def open_gateway(
    ctx: Context, profile: Profile | str = Profile.JOB, *, retries: int | None = None
) -> SalesforceGateway:
    """The gateway for the connection in force, built with ``profile``.

    The transaction that reads the connection is closed before this returns, so no call
    the gateway makes ever runs inside it. ``retries`` overrides the profile's (callers
    written before profiles pass ``retries=LONG_JOB_RETRIES``, which is the ``job``
    profile's own value). Raises :class:`UsageError` when no connection is configured.
    """
    config = connection_in_force(ctx)
    if config is None:
        raise UsageError(NO_CONNECTION, field="salesforce")
    return SalesforceGateway(config, profile=profile, retries=retries)
