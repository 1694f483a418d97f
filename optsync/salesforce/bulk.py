"""Bulk API 2.0 for the nightly sync and ``persons pull``: query jobs, ingest updates.

Why not ``sf.bulk2`` from simple-salesforce: it never renews an expired session, its
polling sleeps at least ``wait`` (5 s) before the first look, its query helper hands
back whole result sets as strings, and its record writer renders ``True`` as ``True``.
A sync of a million records must stream, renew and poll briskly, so this module drives
the documented endpoints itself (``docs/salesforce-api.md`` §4) — every request still
goes through :class:`~optsync.salesforce.gateway.SalesforceGateway`, so it is counted
in ``gateway.api_calls``, renewed on 401 and translated into
:class:`~optsync.salesforce.errors.SalesforceCallError` like any other call.

What they need, and nothing else:

* :meth:`BulkApi.count` — a REST ``SELECT COUNT()`` (one call), to choose REST or Bulk;
* :meth:`BulkApi.query_ids` — the ``Id`` column of a query job, streamed row by row from
  each result set (never a whole set in memory); :meth:`BulkApi.query_records` — every
  column of each row, streamed the same way (``persons pull`` of a large object);
* :meth:`BulkApi.set_opt_out` — one ingest ``update`` job per object (split only past
  ~100 MB of CSV), the CSV spooled to a temporary file, and the ``failedResults`` read
  back and classified with the shared failure table.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import requests

from optsync.domain.failures import Classification, classify
from optsync.domain.ids import InvalidSalesforceId, record_object, to_18
from optsync.salesforce import soql
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import SalesforceGateway, call_error

TERMINAL = ("JobComplete", "Failed", "Aborted")
MAX_RECORDS_PER_SET = 100_000
"""Rows per query result set: fewer round trips than simple-salesforce's 50,000; a set is
streamed, so its size does not cost memory."""
MAX_ROWS_PER_JOB = 2_000_000
"""``Id,Field`` rows are ~25 bytes, so this stays far below the 100 MB upload advice."""
_READ_CHUNK = 64 * 1024
_BULK_STATUS = 400
"""Status used to classify a per-row ``sf__Error``: the row was refused, the call was not."""


@dataclass(frozen=True)
class BulkFailure:
    """One row of an ingest job's ``failedResults``, classified."""

    salesforce_id: str
    code: str
    message: str
    classification: Classification


@dataclass(frozen=True)
class IngestOutcome:
    """What ingest jobs did: rows sent, rows failed (listed), job ids."""

    sent: int
    failures: list[BulkFailure]
    job_ids: list[str]

    @property
    def succeeded(self) -> int:
        return self.sent - len(self.failures)


def parse_sf_error(text: str) -> tuple[str, str]:
    """``CODE:message:fields --`` → ``(CODE, message)``.

    The message itself may contain colons (``...or 1 records: 003...:--``), so the code is
    cut at the first colon and the trailing ``:fields --`` at the last one.
    """
    raw = (text or "").strip()
    if ":" not in raw:
        return (raw.upper() or "UNKNOWN_ERROR"), raw
    code, rest = raw.split(":", 1)
    if rest.endswith("--") and ":" in rest:
        rest = rest.rsplit(":", 1)[0]
    return code.strip().upper() or "UNKNOWN_ERROR", rest.strip()


class BulkApi:
    """Bulk API 2.0 jobs over one gateway.

    ``heartbeat`` is called on every poll so a long job keeps its sync run alive;
    ``sleep`` and the poll intervals are parameters so tests run without waiting.
    """

    def __init__(
        self,
        gateway: SalesforceGateway,
        *,
        poll_initial: float = 0.2,
        poll_max: float = 5.0,
        job_timeout: float = 6 * 3600,
        heartbeat: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_records_per_set: int = MAX_RECORDS_PER_SET,
        max_rows_per_job: int = MAX_ROWS_PER_JOB,
    ) -> None:
        self.gateway = gateway
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.job_timeout = job_timeout
        self.heartbeat = heartbeat or (lambda: None)
        self.sleep = sleep
        self.max_records_per_set = max_records_per_set
        self.max_rows_per_job = max_rows_per_job

    # -- transport ----------------------------------------------------------------------
    def _request(self, endpoint: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One counted API request through the gateway (renewal and error translation).

        The gateway's public methods return parsed JSON; Bulk needs raw CSV bodies and
        headers, hence its call wrapper with simple-salesforce's raw request helper.
        """
        kwargs.setdefault("timeout", self.gateway.timeout)

        def call(sf: Any) -> requests.Response:
            body = kwargs.get("data")
            if body is not None and hasattr(body, "seek"):
                body.seek(0)  # a repeated request (after a session renewal) re-sends it all
            response: requests.Response = sf._call_salesforce(
                method, sf.base_url + path, name=path, **kwargs
            )
            return response

        return self.gateway.call(endpoint, call)

    def _json(self, endpoint: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._request(endpoint, method, path, json=body)
        return dict(response.json()) if response.content else {}

    # -- REST count ----------------------------------------------------------------------
    def count(self, obj: str, where: str) -> int:
        """``SELECT COUNT() FROM obj WHERE where`` (``where`` is built from checked names
        by the caller's code, never user text)."""
        query = f"SELECT COUNT() FROM {soql.object_name(obj)} WHERE {where}"
        response = self._request("query", "GET", "query/", params={"q": query})
        return int(response.json().get("totalSize", 0))

    # -- polling --------------------------------------------------------------------------
    def _wait(self, kind: str, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout
        delay = self.poll_initial
        while True:
            self.sleep(delay)
            self.heartbeat()
            info = self._json(f"jobs/{kind}/{{id}}", "GET", f"jobs/{kind}/{job_id}")
            state = info.get("state")
            if state in TERMINAL:
                return info
            if time.monotonic() > deadline:
                self._abort(kind, job_id)
                raise SalesforceCallError(
                    classify(None, "BULK_JOB_TIMEOUT"),
                    None,
                    f"Bulk job {job_id} did not finish within {self.job_timeout:.0f} s",
                )
            delay = min(delay * 1.6, self.poll_max)

    def _abort(self, kind: str, job_id: str) -> None:
        # Best effort: an unfinished job is failed by Salesforce after 24 h anyway.
        with contextlib.suppress(SalesforceCallError):
            self._json(
                f"jobs/{kind}/{{id}}", "PATCH", f"jobs/{kind}/{job_id}", {"state": "Aborted"}
            )

    @staticmethod
    def _job_failed(job_id: str, info: dict[str, Any]) -> SalesforceCallError:
        message = str(info.get("errorMessage") or f"state {info.get('state')}")
        code = message.split(":", 1)[0].strip().upper() if ":" in message else "BULK_JOB_FAILED"
        return SalesforceCallError(
            classify(_BULK_STATUS, code, message),
            _BULK_STATUS,
            f"Bulk job {job_id} {str(info.get('state')).lower()}: {message}",
        )

    # -- query ----------------------------------------------------------------------------
    def query_ids(self, query: str) -> Iterator[str]:
        """The ``Id`` of every row of a Bulk 2.0 query job, streamed set by set.

        ``query`` must select ``Id`` first; the caller builds it from checked names.
        """
        for _header, rows in self._result_sets(query):
            for row in rows:
                if row and row[0]:
                    yield row[0]

    def query_records(self, query: str) -> Iterator[dict[str, str | None]]:
        """Every row of a Bulk 2.0 query job as ``{column: value}``, streamed set by set.

        Keys are the result's header (the selected field names); an empty cell is
        ``None``, because Bulk CSV writes a null as an empty value (so an empty string
        and a null cannot be told apart — Salesforce stores neither for text fields).
        The caller builds ``query`` from checked names.
        """
        return self.records_of(self.start_query(query))

    def start_query(self, query: str) -> str:
        """Create a query job and return its id without waiting: Salesforce processes the
        jobs started together while the caller reads an earlier one's results
        (:meth:`records_of`). The caller builds ``query`` from checked names."""
        info = self._json(
            "jobs/query",
            "POST",
            "jobs/query",
            {"operation": "query", "query": query, "columnDelimiter": "COMMA", "lineEnding": "LF"},
        )
        return str(info["id"])

    def abort_query(self, job_id: str) -> None:
        """Abort a started query job that will not be read (best effort)."""
        self._abort("query", job_id)

    def records_of(self, job_id: str) -> Iterator[dict[str, str | None]]:
        """Every row of a started query job, as :meth:`query_records` yields them (one
        dict per row, built in C unless the row has an empty cell)."""
        for header, rows in self._results(job_id):
            width = len(header)
            for row in rows:
                if not row:
                    continue
                if len(row) != width:
                    raise SalesforceCallError(
                        classify(None, "INVALID_RESPONSE"),
                        None,
                        f"a Bulk query result row has {len(row)} values but the header has {width}",
                    )
                if "" in row:
                    yield {name: value or None for name, value in zip(header, row, strict=True)}
                else:
                    yield dict(zip(header, row, strict=True))

    def _result_sets(self, query: str) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
        """Run a query job and yield each result set (see :meth:`_results`)."""
        yield from self._results(self.start_query(query))

    def _results(self, job_id: str) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
        """Wait for a query job and yield each result set as (header, rows still
        streaming).

        The rows of a set must be read before the next set is asked for: the set's
        response is closed as soon as the consumer moves on.
        """
        try:
            info = self._wait("query", job_id)
        except BaseException:
            self._abort("query", job_id)
            raise
        if info.get("state") != "JobComplete":
            raise self._job_failed(job_id, info)
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": self.max_records_per_set}
            if locator:
                params["locator"] = locator
            response = self._request(
                "jobs/query/{id}/results",
                "GET",
                f"jobs/query/{job_id}/results",
                params=params,
                headers={"Accept": "text/csv"},
                stream=True,
            )
            with response:
                reader = csv.reader(_lines(response))
                header = next(reader, None)
                if header:  # every set repeats the header; an empty body has none
                    yield header, reader
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return
            self.heartbeat()

    # -- ingest ---------------------------------------------------------------------------
    def set_opt_out(self, obj: str, field: str, ids: Iterable[str]) -> IngestOutcome:
        """Set ``field`` to true on every id (all of object ``obj``) with ingest jobs.

        Ids are written to a temporary CSV as they come (``Id,<field>`` with lowercase
        ``true``, the field's person form on a Person Account:
        :func:`optsync.salesforce.soql.record_field`); a new job starts every
        ``max_rows_per_job`` rows.
        """
        obj = soql.object_name(obj)
        name = soql.record_field(obj, field)
        failures: list[BulkFailure] = []
        job_ids: list[str] = []
        sent = 0
        spool: IO[bytes] | None = None
        rows = 0
        for raw in ids:
            sf_id = _checked(raw, obj)
            if sf_id is None:
                failures.append(_malformed(raw, obj))
                continue
            if spool is None:
                spool = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed by _run_ingest
                spool.write(f"Id,{name}\n".encode())
                rows = 0
            spool.write(f"{sf_id},true\n".encode())
            rows += 1
            sent += 1
            if rows >= self.max_rows_per_job:
                failures += self._run_ingest(obj, spool, job_ids)
                spool = None
        if spool is not None:
            failures += self._run_ingest(obj, spool, job_ids)
        return IngestOutcome(sent=sent, failures=failures, job_ids=job_ids)

    def _run_ingest(self, obj: str, spool: IO[bytes], job_ids: list[str]) -> list[BulkFailure]:
        with spool:
            info = self._json(
                "jobs/ingest",
                "POST",
                "jobs/ingest",
                {
                    "object": obj,
                    "operation": "update",
                    "contentType": "CSV",
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                },
            )
            job_id = str(info["id"])
            job_ids.append(job_id)
            try:
                self._request(
                    "jobs/ingest/{id}/batches",
                    "PUT",
                    f"jobs/ingest/{job_id}/batches",
                    data=spool,
                    headers={"Content-Type": "text/csv"},
                )
                self._json(
                    "jobs/ingest/{id}",
                    "PATCH",
                    f"jobs/ingest/{job_id}",
                    {"state": "UploadComplete"},
                )
                info = self._wait("ingest", job_id)
            except BaseException:
                self._abort("ingest", job_id)
                raise
        if info.get("state") != "JobComplete":
            raise self._job_failed(job_id, info)
        if not int(info.get("numberRecordsFailed") or 0):
            return []
        response = self._request(
            "jobs/ingest/{id}/failedResults",
            "GET",
            f"jobs/ingest/{job_id}/failedResults/",
            headers={"Accept": "text/csv"},
            stream=True,
        )
        with response:
            return list(_failed_rows(response))


# -- CSV helpers ------------------------------------------------------------------------


def _lines(response: requests.Response) -> Iterator[str]:
    """The body's lines, decoded as they stream, each with its line ending.

    Only ``\n`` ends a line and the ending is kept, so the csv module sees a quoted value
    with an embedded newline (a name, an error message) whole, blank lines inside it
    included. ``iter_lines`` would cut such a value in two and drop the blank lines.
    A UTF-8 byte order mark at the start is skipped. A body cut off mid-stream raises
    :class:`SalesforceCallError` like a failed call (it arrives after the call returned).
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    rest = ""
    chunks = response.iter_content(chunk_size=_READ_CHUNK)
    while True:
        try:
            chunk = next(chunks, None)
        except requests.exceptions.RequestException as exc:
            raise call_error(exc) from None
        if chunk is None:
            break
        lines = (rest + decoder.decode(chunk)).split("\n")
        rest = lines.pop()
        for line in lines:
            yield line + "\n"
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


def _failed_rows(response: requests.Response) -> Iterator[BulkFailure]:
    reader = csv.DictReader(_lines(response))
    for row in reader:
        code, message = parse_sf_error(row.get("sf__Error") or "")
        sf_id = row.get("Id") or row.get("sf__Id") or ""
        yield BulkFailure(sf_id, code, message, classify(_BULK_STATUS, code, message))


def _checked(value: str, obj: str) -> str | None:
    try:
        id18 = to_18(value)
        return id18 if record_object(id18) == obj else None
    except InvalidSalesforceId:
        return None


def _malformed(value: str, obj: str) -> BulkFailure:
    message = f"{value!r} is not a valid {obj} id"
    return BulkFailure(
        value, "MALFORMED_ID", message, classify(_BULK_STATUS, "MALFORMED_ID", message)
    )
