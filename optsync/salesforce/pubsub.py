"""The Pub/Sub API client of the live pull: ``GetTopic``, ``GetSchema`` and the
``Subscribe`` stream over gRPC (TLS, trusting the connection's CA bundle).

* **Auth.** Every call carries the metadata Salesforce reads: ``accesstoken`` (the
  gateway's OAuth token), ``instanceurl`` and ``tenantid`` (the org id). An
  ``UNAUTHENTICATED`` answer renews the gateway's token once.
* **Schemas.** Payloads are Avro (fastavro) with the schema ``GetSchema`` returns, cached
  by schema id (the id changes when the entity's fields change).
* **Errors by intent.** :class:`PubSubError` says what the caller must do, read from the
  gRPC status and Salesforce's ``error-code`` trailer: the replay id is no longer
  accepted (catch up, start afresh), the delivery allocation is used up (wait, poll),
  the topic is not available (CDC not selected for the entity), or a transient failure
  (reconnect with backoff).
* **Timeouts.** Unary calls have a deadline; the stream has none (it is long-lived) and
  is watched by the caller's watchdog instead, which cancels it after 300 s of silence.
"""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import fastavro
import grpc

from optsync.pubsub_api import pb, rpc
from optsync.salesforce.gateway import SalesforceGateway

UNARY_TIMEOUT_S = 30.0
BATCH = 100
"""Events requested per FetchRequest (Salesforce serves at most 100 outstanding)."""


def grpc_target(url: str) -> str:
    """``host:port`` from ``https://host:port`` or ``host:port`` (443 when none)."""
    bare = url.split("://", 1)[-1].rstrip("/")
    return bare if ":" in bare else f"{bare}:443"


class Problem(StrEnum):
    REPLAY_INVALID = "replay_invalid"
    ALLOCATION = "allocation"
    TOPIC_UNAVAILABLE = "topic_unavailable"
    AUTH = "auth"
    TRANSIENT = "transient"


class PubSubError(Exception):
    def __init__(self, problem: Problem, message: str, error_code: str | None = None):
        super().__init__(message)
        self.problem = problem
        self.error_code = error_code


def classify_rpc_error(exc: grpc.RpcError) -> PubSubError:
    """A gRPC failure as what the caller must do (status and ``error-code`` trailer)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    trailer = None
    for key, value in (exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else ():
        if key == "error-code":
            trailer = value if isinstance(value, str) else value.decode()
    text = f"{trailer or ''} {details}".lower()
    if "replayid" in text:
        return PubSubError(Problem.REPLAY_INVALID, details, trailer)
    if "limit.exceeded" in text:
        return PubSubError(Problem.ALLOCATION, details, trailer)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return PubSubError(Problem.AUTH, details, trailer)
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
        return PubSubError(Problem.TOPIC_UNAVAILABLE, details, trailer)
    return PubSubError(Problem.TRANSIENT, details, trailer)


@dataclass(frozen=True)
class Schema:
    parsed: Any
    names: list[str]
    nested: dict[int, list[str]]


def _schema(schema_json: str) -> Schema:
    raw = json.loads(schema_json)
    names: list[str] = []
    nested: dict[int, list[str]] = {}
    for pos, f in enumerate(raw.get("fields", [])):
        names.append(f["name"])
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("type") == "record":
                nested[pos] = [sub["name"] for sub in t.get("fields", [])]
    return Schema(fastavro.parse_schema(raw), names, nested)


@dataclass(frozen=True)
class Received:
    """One event of a FetchResponse, decoded."""

    replay_id: bytes
    payload: dict[str, Any]
    schema: Schema


class Stream:
    """One open ``Subscribe`` stream; iterate :meth:`responses`; :meth:`cancel` ends it
    from any thread. ``last_response`` is the monotonic time of the last answer."""

    def __init__(self, client: PubSubClient, topic: str, preset: Any, replay_id: bytes | None):
        self.client = client
        self.topic = topic
        self._requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        self._requests.put(
            pb.FetchRequest(
                topic_name=topic,
                replay_preset=preset,
                replay_id=replay_id or b"",
                num_requested=BATCH,
            )
        )
        self.last_response = time.monotonic()
        self._call = client.stub.Subscribe(self._request_iter(), metadata=client.metadata())

    def _request_iter(self) -> Iterator[pb.FetchRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def request_more(self) -> None:
        self._requests.put(pb.FetchRequest(topic_name=self.topic, num_requested=BATCH))

    def responses(self) -> Iterator[tuple[list[Received], bytes, int]]:
        """``(events, latest_replay_id, pending_num_requested)`` per answer; raises
        :class:`PubSubError` when the stream fails."""
        try:
            for response in self._call:
                self.last_response = time.monotonic()
                events = [
                    Received(
                        bytes(e.replay_id),
                        self.client.decode(e.event.schema_id, bytes(e.event.payload)),
                        self.client.schema(e.event.schema_id),
                    )
                    for e in response.events
                ]
                yield events, bytes(response.latest_replay_id), int(response.pending_num_requested)
        except grpc.RpcError as exc:
            raise classify_rpc_error(exc) from None

    def cancel(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class PubSubClient:
    """One gRPC channel to the Pub/Sub API for one connection."""

    def __init__(
        self, target: str, gateway: SalesforceGateway, *, timeout_s: float = UNARY_TIMEOUT_S
    ) -> None:
        self.gateway = gateway
        self.timeout_s = timeout_s
        ca = gateway.config.ca_bundle
        roots = open(ca, "rb").read() if ca else None  # noqa: SIM115 (read once, closed)
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        self.channel = grpc.secure_channel(
            grpc_target(target),
            credentials,
            options=[("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000)],
        )
        self.stub = rpc.PubSubStub(self.channel)  # type: ignore[no-untyped-call]
        self._schemas: dict[str, Schema] = {}
        self._lock = threading.Lock()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.gateway.token or self.gateway.connect()
        return (
            ("accesstoken", token.access_token),
            ("instanceurl", token.instance_url),
            ("tenantid", token.org_id or ""),
        )

    def _unary(self, method: Any, request: Any) -> Any:
        for attempt in (1, 2):
            try:
                return method(request, metadata=self.metadata(), timeout=self.timeout_s)
            except grpc.RpcError as exc:
                error = classify_rpc_error(exc)
                if error.problem is Problem.AUTH and attempt == 1:
                    self.gateway.renew()
                    continue
                raise error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def topic(self, name: str) -> Any:
        """The topic's info; :class:`PubSubError` ``TOPIC_UNAVAILABLE`` when it cannot
        be subscribed to (the entity is not selected for Change Data Capture)."""
        info = self._unary(self.stub.GetTopic, pb.TopicRequest(topic_name=name))
        if not info.can_subscribe:
            raise PubSubError(Problem.TOPIC_UNAVAILABLE, f"{name} cannot be subscribed to")
        return info

    def schema(self, schema_id: str) -> Schema:
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        info = self._unary(self.stub.GetSchema, pb.SchemaRequest(schema_id=schema_id))
        schema = _schema(info.schema_json)
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

    def decode(self, schema_id: str, payload: bytes) -> dict[str, Any]:
        record = fastavro.schemaless_reader(io.BytesIO(payload), self.schema(schema_id).parsed)
        assert isinstance(record, dict)
        return record

    def subscribe(self, topic: str, replay_id: bytes | None) -> Stream:
        """A stream after ``replay_id`` (``CUSTOM``), or of new events only (``LATEST``)."""
        preset = pb.CUSTOM if replay_id else pb.LATEST
        return Stream(self, topic, preset, replay_id)

    def close(self) -> None:
        self.channel.close()
