"""Bulk API 2.0: ingest and query jobs, processed by a background worker thread.

Why a worker: on Salesforce a job is asynchronous (``UploadComplete`` → ``InProgress`` →
``JobComplete``) and clients must poll; processing inline would hide polling bugs.
Why files: uploads and results can be hundreds of megabytes, so they are streamed to and
from files in a private temporary directory. A query result is written once as CSV
together with the byte offset of every row (8 bytes a row), so any result set —
whatever ``maxRecords`` and locator the client asks for — is a header plus one byte
range streamed from disk, and can be re-fetched while the job exists.
"""

from __future__ import annotations

import base64
import csv
import os
import queue
import shutil
import tempfile
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from optsync.emulator.auth import USER_ID
from optsync.emulator.errors import SalesforceError
from optsync.emulator.faults import Governor
from optsync.emulator.gateway import api, json_body, sf_json
from optsync.emulator.ids import new_id
from optsync.emulator.org import Org
from optsync.emulator.pubsub.capture import Writer, current_writer, writing_as
from optsync.emulator.schema import JOB_PREFIX, OBJECTS
from optsync.emulator.soql import CompiledQuery, compile_query, format_datetime
from optsync.emulator.store import OrgStore

DELIMITERS = {
    "COMMA": ",",
    "TAB": "\t",
    "PIPE": "|",
    "SEMICOLON": ";",
    "CARET": "^",
    "BACKQUOTE": "`",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
TERMINAL = ("JobComplete", "Failed", "Aborted")
INTERNAL_BATCH = 10_000  # Salesforce splits ingest jobs into batches of this size
_COMMIT_EVERY = 1_000  # short transactions keep the event loop responsive
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
_STREAM_CHUNK = 256 * 1024


def _now() -> str:
    return format_datetime(datetime.now(UTC))


@dataclass
class Job:
    """One Bulk 2.0 job and the files behind it."""

    id: str
    kind: str  # "ingest" or "query"
    operation: str
    object: str
    api_version: str
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    external_id_field: str | None = None
    query: str | None = None
    compiled: CompiledQuery | None = None
    state: str = "Open"
    created: str = field(default_factory=_now)
    modstamp: str = field(default_factory=_now)
    uploads: int = 0
    processed: int = 0
    failed: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    abort: threading.Event = field(default_factory=threading.Event)
    directory: Path | None = None
    offsets: array[int] = field(default_factory=lambda: array("q"))
    header: bytes = b""
    writer: Writer = field(default_factory=current_writer)  # the creating call's, for CDC

    def path(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / name

    def touch(self, state: str | None = None) -> None:
        if state is not None:
            self.state = state
        self.modstamp = _now()

    def info(self) -> dict[str, Any]:
        """JobInfo as ``GET /jobs/{ingest|query}/{id}`` returns it."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        body.update(
            {
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
            }
        )
        if self.kind == "ingest":
            body.update(
                {
                    "jobType": "V2Ingest",
                    "lineEnding": self.line_ending,
                    "columnDelimiter": self.column_delimiter,
                    "numberRecordsProcessed": self.processed,
                    "numberRecordsFailed": self.failed,
                    "retries": 0,
                    "totalProcessingTime": self.processing_ms,
                    "apiActiveProcessingTime": self.processing_ms,
                    "apexProcessingTime": 0,
                }
            )
            if self.state == "Open":
                # Where to PUT the data: only while the job takes an upload (the guides'
                # JobInfo of a closed job has no contentUrl).
                body["contentUrl"] = (
                    f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
                )
        else:
            body.update(
                {
                    "jobType": "V2Query",
                    "lineEnding": self.line_ending,
                    "columnDelimiter": self.column_delimiter,
                    "numberRecordsProcessed": self.processed,
                    "retries": 0,
                    "totalProcessingTime": self.processing_ms,
                    "isPkChunkingSupported": True,
                }
            )
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


def job_not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


class JobManager:
    """Owns every job, its files and the worker thread that processes them."""

    def __init__(self, store: OrgStore, governor: Governor, workdir: Path):
        self.store = store
        self.governor = governor
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = Path(tempfile.mkdtemp(prefix="jobs-", dir=workdir))
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._numbers = iter(range(1, 10**15))
        self._query_jobs: deque[float] = deque()
        self._batches: deque[float] = deque()
        self._thread = threading.Thread(target=self._work, name="emulator-bulk", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- lifecycle
    def close(self) -> None:
        for job in list(self._jobs.values()):
            job.abort.set()
        self._queue.put(None)
        self._thread.join(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def reset(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
            self._query_jobs.clear()
            self._batches.clear()
        for job in jobs:
            job.abort.set()
            if job.directory is not None:
                shutil.rmtree(job.directory, ignore_errors=True)

    def _new_job(self, **kwargs: Any) -> Job:
        with self._lock:
            job = Job(id=new_id(JOB_PREFIX, next(self._numbers)), **kwargs)
            job.directory = self.root / job.id
            job.directory.mkdir(mode=0o700)
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str, kind: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.kind != kind:
            raise job_not_found()
        return job

    def jobs_of(self, kind: str) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.kind == kind]

    def delete(self, job_id: str, kind: str) -> None:
        job = self.get(job_id, kind)
        if job.state not in TERMINAL:
            raise SalesforceError(
                400,
                "INVALIDJOBSTATE",
                f"Job {job.id} cannot be deleted in state {job.state}; abort it first",
            )
        with self._lock:
            self._jobs.pop(job.id, None)
        if job.directory is not None:
            shutil.rmtree(job.directory, ignore_errors=True)

    @staticmethod
    def _recent(dq: deque[float]) -> int:
        cutoff = time.time() - 24 * 3600
        while dq and dq[0] < cutoff:
            dq.popleft()
        return len(dq)

    def query_jobs_today(self) -> int:
        return self._recent(self._query_jobs)

    def batches_today(self) -> int:
        return self._recent(self._batches)

    # ------------------------------------------------------------- creation
    def create_ingest(self, body: Any, version: str) -> Job:
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be an object")
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise SalesforceError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        obj = {o.lower(): o for o in OBJECTS}.get(str(body.get("object", "")).lower())
        if obj is None:
            raise SalesforceError(
                400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}"
            )
        if body.get("contentType", "CSV") != "CSV":
            raise SalesforceError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
        delim, ending = self._formats(body)
        ext = body.get("externalIdFieldName")
        if operation == "upsert":
            if not ext:
                raise SalesforceError(
                    400,
                    "INVALIDJOB",
                    "InvalidJob : External ID was blank "
                    f"for {obj}. An External ID must be specified for upsert.",
                )
            if str(ext).lower() != "id":
                raise SalesforceError(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {ext} does not match "
                    f"an External ID, Salesforce Id, or indexed field for "
                    f"{obj}",
                )
            ext = "Id"
        return self._new_job(
            kind="ingest",
            operation=operation,
            object=obj,
            api_version=version,
            column_delimiter=delim,
            line_ending=ending,
            external_id_field=ext if operation == "upsert" else None,
        )

    def create_query(self, body: Any, version: str) -> Job:
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be an object")
        operation = body.get("operation", "query")
        if operation not in QUERY_OPERATIONS:
            raise SalesforceError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise SalesforceError(400, "INVALIDJOB", "InvalidJob : query is required")
        delim, ending = self._formats(body)
        compiled = compile_query(soql, {o: self.store.visible_fields(o) for o in OBJECTS})
        if compiled.count_only or compiled.aggregates:
            raise SalesforceError(
                400,
                "INVALIDJOB",
                "InvalidJob : Aggregate queries (COUNT()) are not supported "
                "by Bulk API 2.0 query jobs",
            )
        compound = [n for n in compiled.fields if compiled.defs[n].is_compound]
        if compound:
            raise SalesforceError(
                400,
                "API_ERROR",
                f"Selecting compound data not supported in Bulk Query: {compound[0]}",
            )
        job = self._new_job(
            kind="query",
            operation=operation,
            object=compiled.obj,
            api_version=version,
            column_delimiter=delim,
            line_ending=ending,
            query=soql,
            compiled=compiled,
            state="UploadComplete",
        )
        with self._lock:
            self._query_jobs.append(time.time())
        self._queue.put(job.id)
        return job

    @staticmethod
    def _formats(body: dict[str, Any]) -> tuple[str, str]:
        delim = body.get("columnDelimiter", "COMMA")
        ending = body.get("lineEnding", "LF")
        if delim not in DELIMITERS:
            raise SalesforceError(
                400, "INVALIDJOB", f"InvalidJob : Invalid column delimiter: {delim}"
            )
        if ending not in LINE_ENDINGS:
            raise SalesforceError(400, "INVALIDJOB", f"InvalidJob : Invalid line ending: {ending}")
        return delim, ending

    # ------------------------------------------------------------- ingest calls
    async def upload(self, job: Job, request: Request) -> None:
        """Stream the CSV body to the job's file; only one upload per job counts."""
        if job.state != "Open":
            raise SalesforceError(
                409, "INVALIDJOBSTATE", f"Job {job.id} is not open for uploads (state {job.state})"
            )
        job.uploads += 1
        target = job.path("upload.csv" if job.uploads == 1 else f"upload-{job.uploads}.csv")
        size = 0
        with open(target, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise SalesforceError(
                        400, "INVALIDBATCH", "Exceeded max size limit of 150000000 bytes"
                    )
                fh.write(chunk)
        job.touch()

    def set_state(self, job: Job, body: Any) -> Job:
        state = body.get("state") if isinstance(body, dict) else None
        if state == "Aborted":
            if job.state in TERMINAL:
                raise SalesforceError(
                    400, "INVALIDJOBSTATE", f"Job {job.id} is already in state {job.state}"
                )
            job.abort.set()
            self._finish_aborted(job)
            return job
        if state == "UploadComplete" and job.kind == "ingest":
            if job.state != "Open":
                raise SalesforceError(
                    400, "INVALIDJOBSTATE", f"Job {job.id} cannot be closed in state {job.state}"
                )
            if job.uploads > 1:
                raise SalesforceError(
                    400,
                    "INVALIDJOB",
                    f"Found multiple contents for job: <{job.id}>, please "
                    "'Close' / 'Abort' / 'Delete' the current Job then create "
                    "a new Job and make sure the content is uploaded only "
                    "once for the job.",
                )
            job.touch("UploadComplete")
            self._queue.put(job.id)
            return job
        raise SalesforceError(
            400, "INVALIDJOBSTATE", f"Invalid state transition to {state!r} for job {job.id}"
        )

    def _finish_aborted(self, job: Job) -> None:
        """An aborted job's never-processed rows become its unprocessed records."""
        if (
            job.kind == "ingest"
            and job.uploads
            and job.state in ("Open", "UploadComplete")
            and not job.path("unprocessed.csv").exists()
        ):
            src = job.path("upload.csv")
            if src.exists():
                shutil.copyfile(src, job.path("unprocessed.csv"))
        job.touch("Aborted")

    # ------------------------------------------------------------- worker
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self._jobs.get(job_id)
            if job is None or job.state in TERMINAL:
                continue
            started = time.monotonic()
            job.touch("InProgress")
            try:
                if job.kind == "ingest":
                    with writing_as(job.writer):
                        self._process_ingest(job)
                else:
                    self._process_query(job)
            except SalesforceError as exc:
                job.error_message = f"{exc.code} : {exc.message}"
                job.touch("Failed")
            except Exception as exc:  # a bug must fail the job, never kill the worker
                job.error_message = f"UNKNOWN_EXCEPTION : {exc}"
                job.touch("Failed")
            job.processing_ms = int((time.monotonic() - started) * 1000)

    def _apply(self, job: Job, header: list[str], row: list[str]) -> tuple[str, bool]:
        """Apply one CSV row; returns (record id, created) or raises SalesforceError."""
        fault = self.governor.row_fault()
        if fault is not None:
            raise fault
        if len(row) != len(header):
            raise SalesforceError(
                400, "INVALID_FIELD", f"Row has {len(row)} values but the header has {len(header)}"
            )
        values = dict(zip(header, row, strict=True))
        store = self.store
        if job.operation == "insert":
            return store.create(job.object, values, csv=True), True
        record_id = values.pop("Id", "")
        try:
            if job.operation == "upsert" and not record_id:
                return store.create(job.object, values, csv=True), True
            if not record_id:
                raise SalesforceError(
                    400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
                )
            if job.operation in ("update", "upsert"):
                return store.update(job.object, record_id, values, csv=True), False
            return store.delete(job.object, record_id), False
        except SalesforceError as exc:
            if exc.code == "NOT_FOUND":
                raise SalesforceError(
                    400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"
                ) from None
            raise

    def _apply_chunk(
        self,
        job: Job,
        header: list[str],
        chunk: list[list[str]],
    ) -> list[tuple[str, bool] | SalesforceError]:
        """Outcomes of a chunk of rows, in order; updates go through one batched call."""
        if job.operation != "update":
            out: list[tuple[str, bool] | SalesforceError] = []
            for row in chunk:
                try:
                    out.append(self._apply(job, header, row))
                except SalesforceError as exc:
                    out.append(exc)
            return out
        outcomes: list[tuple[str, bool] | SalesforceError | None] = []
        items: list[tuple[str, dict[str, Any]]] = []
        for row in chunk:
            fault = self.governor.row_fault()
            if fault is not None:
                outcomes.append(fault)
            elif len(row) != len(header):
                outcomes.append(
                    SalesforceError(
                        400,
                        "INVALID_FIELD",
                        f"Row has {len(row)} values but the header has {len(header)}",
                    )
                )
            else:
                values = dict(zip(header, row, strict=True))
                record_id = values.pop("Id", "")
                if not record_id:
                    outcomes.append(
                        SalesforceError(
                            400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
                        )
                    )
                else:
                    outcomes.append(None)
                    items.append((record_id, values))
        saved = iter(self.store.update_records(job.object, items, csv=True))
        final: list[tuple[str, bool] | SalesforceError] = []
        for outcome in outcomes:
            if outcome is not None:
                final.append(outcome)
                continue
            result = next(saved)
            if isinstance(result, str):
                final.append((result, False))
            elif result.code == "NOT_FOUND":
                final.append(
                    SalesforceError(
                        400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"
                    )
                )
            else:
                final.append(result)
        return final

    def _process_ingest(self, job: Job) -> None:
        if not job.uploads:
            raise SalesforceError(400, "InvalidBatch", "No data was uploaded for this job")
        delim = DELIMITERS[job.column_delimiter]
        with open(job.path("upload.csv"), newline="", encoding="utf-8-sig") as src:
            reader = csv.reader(src, delimiter=delim)
            header = [h.strip() for h in next(reader, [])]
            self._check_header(job, header)
            ok_fh = open(job.path("success.csv"), "w", newline="", encoding="utf-8")  # noqa: SIM115
            bad_fh = open(job.path("failed.csv"), "w", newline="", encoding="utf-8")  # noqa: SIM115
            with ok_fh, bad_fh:
                ok = csv.writer(ok_fh, delimiter=delim, lineterminator="\n")
                bad = csv.writer(bad_fh, delimiter=delim, lineterminator="\n")
                q = '"'
                ok_fh.write(f"{q}sf__Id{q}{delim}{q}sf__Created{q}{delim}")
                ok.writerow(header)
                bad_fh.write(f"{q}sf__Id{q}{delim}{q}sf__Error{q}{delim}")
                bad.writerow(header)
                rows = iter(reader)
                in_batch = 0
                while True:
                    if job.abort.is_set():
                        self._write_unprocessed(job, header, rows, delim)
                        return
                    chunk = [r for _, r in zip(range(_COMMIT_EVERY), rows, strict=False)]
                    if not chunk:
                        break
                    chunk = [r for r in chunk if r]
                    with self.store.transaction():
                        outcomes = self._apply_chunk(job, header, chunk)
                    for row, outcome in zip(chunk, outcomes, strict=True):
                        if isinstance(outcome, SalesforceError):
                            rid = (
                                row[header.index("Id")]
                                if "Id" in header and len(row) == len(header)
                                else ""
                            )
                            error = outcome.bulk_error().replace(q, q + q)
                            bad_fh.write(f"{q}{rid}{q}{delim}{q}{error}{q}{delim}")
                            bad.writerow(row)
                            job.failed += 1
                        else:
                            rid, created = outcome
                            ok_fh.write(f"{q}{rid}{q}{delim}{q}{str(created).lower()}{q}{delim}")
                            ok.writerow(row)
                        job.processed += 1
                    in_batch += len(chunk)
                    if in_batch >= INTERNAL_BATCH:
                        self._batches.append(time.time())
                        in_batch = 0
                if in_batch:
                    self._batches.append(time.time())
        if not job.abort.is_set():
            job.touch("JobComplete")

    def _check_header(self, job: Job, header: list[str]) -> None:
        fields = self.store.visible_fields(job.object)
        by_lower = {n.lower(): n for n in fields}
        for i, name in enumerate(header):
            canonical = by_lower.get(name.lower())
            if canonical is None:
                raise SalesforceError(400, "InvalidBatch", f"Field name not found : {name}")
            header[i] = canonical
        if job.operation in ("update", "delete", "hardDelete") and "Id" not in header:
            raise SalesforceError(400, "InvalidBatch", "Field name not found : Id")
        if job.operation in ("delete", "hardDelete") and header != ["Id"]:
            raise SalesforceError(
                400, "InvalidBatch", "The 'delete' batch must contain only 'Id' field"
            )

    @staticmethod
    def _write_unprocessed(
        job: Job, header: list[str], rows: Iterator[list[str]], delim: str
    ) -> None:
        with open(job.path("unprocessed.csv"), "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter=delim, lineterminator="\n")
            w.writerow(header)
            for row in rows:
                w.writerow(row)

    def _process_query(self, job: Job) -> None:
        q = job.compiled
        assert q is not None
        delim = DELIMITERS[job.column_delimiter]
        eol = LINE_ENDINGS[job.line_ending]
        include_deleted = job.operation == "queryAll"
        rowids = self.store.matching_rowids(q, include_deleted)
        sink = _LineSink()
        # Salesforce quotes every header and value in query results.
        writer = csv.writer(sink, delimiter=delim, lineterminator=eol, quoting=csv.QUOTE_ALL)
        writer.writerow(q.fields)
        job.header = sink.take().encode()
        offsets: array[int] = array("q")
        pos = 0
        # Bulk CSV writes dateTimes as 2024-05-01T17:03:12.000Z (REST JSON uses +0000).
        datetimes = {i for i, n in enumerate(q.fields) if q.defs[n].type == "datetime"}
        with open(job.path("query.csv"), "wb") as fh:
            buf: list[bytes] = []
            for row in self.store.fetch(q.obj, rowids, q.fields):
                if job.abort.is_set():
                    return
                writer.writerow([_csv_value(v, i in datetimes) for i, v in enumerate(row)])
                data = sink.take().encode()
                offsets.append(pos)
                pos += len(data)
                buf.append(data)
                if len(buf) >= 5000:
                    fh.write(b"".join(buf))
                    buf.clear()
            fh.write(b"".join(buf))
        offsets.append(pos)
        job.offsets = offsets
        job.processed = len(offsets) - 1
        if not job.abort.is_set():
            job.touch("JobComplete")

    # ------------------------------------------------------------- results
    def ingest_results(self, job: Job, which: str) -> Iterator[bytes]:
        names = {
            "successfulResults": "success.csv",
            "failedResults": "failed.csv",
            "unprocessedrecords": "unprocessed.csv",
        }
        path = job.path(names[which])
        if which != "unprocessedrecords" and job.state not in TERMINAL:
            raise SalesforceError(
                400, "INVALIDJOBSTATE", f"Job {job.id} is not complete (state {job.state})"
            )
        if not path.exists():
            return iter(())
        return _stream_file(path, 0, None)

    def query_results(
        self,
        job: Job,
        locator: str | None,
        max_records: int | None,
    ) -> tuple[Iterator[bytes], int, str]:
        if job.state != "JobComplete":
            raise SalesforceError(
                400, "INVALIDJOBSTATE", f"Job {job.id} is not complete (state {job.state})"
            )
        total = len(job.offsets) - 1
        start = 0
        if locator:
            try:
                start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
            except (ValueError, UnicodeDecodeError):
                raise SalesforceError(
                    400, "INVALID_QUERY_LOCATOR", "invalid query locator"
                ) from None
            if not 0 <= start <= total:
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = total if max_records is None else min(total, start + max_records)
        next_locator = (
            "null" if end >= total else base64.b64encode(str(end).encode()).decode().rstrip("=")
        )
        body = _chain(
            job.header,
            _stream_file(
                job.path("query.csv"), job.offsets[start], job.offsets[end] - job.offsets[start]
            ),
        )
        return body, end - start, next_locator


def _csv_value(value: Any, is_datetime: bool) -> Any:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if is_datetime and isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    return value


class _LineSink:
    """Collects what ``csv.writer`` writes for one row (it writes each row in one call)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        out = "".join(self.parts)
        self.parts.clear()
        return out


def _stream_file(path: Path, start: int, length: int | None) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = length if length is not None else os.path.getsize(path) - start
        while remaining > 0:
            data = fh.read(min(_STREAM_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# ------------------------------------------------------------------ routes
def _job_endpoint(suffix: str = "") -> Any:
    def name(request: Request) -> str:
        kind = "query" if "/jobs/query" in request.url.path else "ingest"
        return f"jobs/{kind}{suffix}"

    return name


@api(_job_endpoint())
async def ingest_collection(request: Request, org: Org, version: str) -> Response:
    if request.method == "POST":
        job = org.jobs.create_ingest(await json_body(request), version)
        info = job.info()
        for key in (
            "jobType",
            "numberRecordsProcessed",
            "numberRecordsFailed",
            "retries",
            "totalProcessingTime",
            "apiActiveProcessingTime",
            "apexProcessingTime",
        ):
            info.pop(key, None)
        return sf_json(info)
    return sf_json(
        {
            "done": True,
            "records": [j.info() for j in org.jobs.jobs_of("ingest")],
            "nextRecordsUrl": None,
        }
    )


@api(_job_endpoint())
async def query_collection(request: Request, org: Org, version: str) -> Response:
    if request.method == "POST":
        job = org.jobs.create_query(await json_body(request), version)
        info = job.info()
        for key in (
            "jobType",
            "numberRecordsProcessed",
            "retries",
            "totalProcessingTime",
            "isPkChunkingSupported",
        ):
            info.pop(key, None)
        return sf_json(info)
    return sf_json(
        {
            "done": True,
            "records": [j.info() for j in org.jobs.jobs_of("query")],
            "nextRecordsUrl": None,
        }
    )


@api(_job_endpoint("/{id}"))
async def job_item(request: Request, org: Org, version: str) -> Response:
    kind = "query" if "/jobs/query/" in request.url.path else "ingest"
    job = org.jobs.get(request.path_params["job_id"], kind)
    if request.method == "GET":
        return sf_json(job.info())
    if request.method == "PATCH":
        return sf_json(org.jobs.set_state(job, await json_body(request)).info())
    org.jobs.delete(job.id, kind)
    return Response(status_code=204)


@api(_job_endpoint("/{id}/batches"))
async def job_upload(request: Request, org: Org, version: str) -> Response:
    job = org.jobs.get(request.path_params["job_id"], "ingest")
    await org.jobs.upload(job, request)
    return Response(status_code=201)


def _csv_response(body: Iterator[bytes], headers: dict[str, str] | None = None) -> Response:
    return StreamingResponse(body, media_type="text/csv", headers=headers)


@api(lambda r: "jobs/ingest/{id}/" + r.path_params["which"])
async def ingest_results(request: Request, org: Org, version: str) -> Response:
    which = request.path_params["which"]
    if which.lower() == "unprocessedrecords":
        which = "unprocessedrecords"
    elif which not in ("successfulResults", "failedResults"):
        raise job_not_found()
    job = org.jobs.get(request.path_params["job_id"], "ingest")
    return _csv_response(org.jobs.ingest_results(job, which))


@api("jobs/query/{id}/results")
async def query_results(request: Request, org: Org, version: str) -> Response:
    job = org.jobs.get(request.path_params["job_id"], "query")
    raw_max = request.query_params.get("maxRecords")
    max_records: int | None = None
    if raw_max:
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise SalesforceError(
                400, "INVALIDPARAMETER", f"Invalid value for maxRecords: {raw_max}"
            )
        max_records = int(raw_max)
    body, count, locator = org.jobs.query_results(
        job, request.query_params.get("locator"), max_records
    )
    return _csv_response(body, {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)})


def routes() -> list[Route]:
    v = "/services/data/v{version}/jobs"
    return [
        Route(f"{v}/ingest", ingest_collection, methods=["GET", "POST"]),
        Route(f"{v}/ingest/{{job_id}}", job_item, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{v}/ingest/{{job_id}}/batches", job_upload, methods=["PUT"]),
        Route(f"{v}/ingest/{{job_id}}/{{which}}", ingest_results, methods=["GET"]),
        Route(f"{v}/query", query_collection, methods=["GET", "POST"]),
        Route(f"{v}/query/{{job_id}}", job_item, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{v}/query/{{job_id}}/results", query_results, methods=["GET"]),
    ]


__all__ = ["Job", "JobManager", "routes"]
