"""The ``eventbus.v1.PubSub`` gRPC service over the org's event bus.

Behaviour follows Salesforce's documentation: call metadata ``accesstoken``,
``instanceurl`` and ``tenantid`` authenticate every call; ``Subscribe`` is pull-based
(the client asks for events with ``num_requested``, at most 100 outstanding), sends an
empty keepalive response carrying ``latest_replay_id`` when events are owed but none
exist, and closes a stream nobody asked anything of for ``idle_timeout_s``. Failures are
gRPC statuses with an ``error-code`` trailer (``sfdc.platform.eventbus.grpc.…``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import grpc

from optsync.emulator.auth import ORG_ID
from optsync.emulator.pubsub.bus import Event, EventBus, Stream, encode_replay
from optsync.pubsub_api import pb, rpc

log = logging.getLogger("optsync.emulator.pubsub")

MAX_OUTSTANDING = 100
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.service.topic.not.found"
SCHEMA_NOT_FOUND = "sfdc.platform.eventbus.grpc.service.schema.not.found"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_INVALID = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
LIMIT_EXCEEDED = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
UNAVAILABLE = "sfdc.platform.eventbus.grpc.service.unavailable"
INVALID_REQUEST = "sfdc.platform.eventbus.grpc.fetch.request.invalid"
IDLE_CLOSED = "sfdc.platform.eventbus.grpc.subscription.fetch.idle.timeout"


def _fail(context: grpc.ServicerContext, status: grpc.StatusCode, code: str, msg: str) -> NoReturn:
    rpc_id = str(uuid.uuid4())
    context.set_trailing_metadata((("error-code", code),))
    context.abort(status, f"{msg} rpcId: {rpc_id}")
    raise AssertionError("unreachable")  # abort raises


class PubSubService(rpc.PubSubServicer):
    """One org's Pub/Sub API."""

    def __init__(self, org: Any, bus: EventBus):
        self.org = org
        self.bus = bus

    # ------------------------------------------------------------- auth
    def _token_ok(self, token: str | None) -> bool:
        return bool(token) and self.org.authority.valid(token)

    def _authenticate(self, context: grpc.ServicerContext) -> str:
        meta = {k.lower(): v for k, v in context.invocation_metadata()}
        token = meta.get("accesstoken")
        instance = str(meta.get("instanceurl", "")).rstrip("/")
        tenant = str(meta.get("tenantid", ""))
        if (
            not isinstance(token, str)
            or not self._token_ok(token)
            or instance != self.org.instance_url.rstrip("/")
            or tenant not in (ORG_ID, ORG_ID[:15])
        ):
            _fail(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                AUTH_ERROR,
                "An authentication exception occurred. "
                "Provide valid authentication via metadata headers.",
            )
        return token

    def _topic(self, context: grpc.ServicerContext, topic: str) -> list[str]:
        entities = self.bus.topic_entities(topic)
        if entities is None:
            _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                TOPIC_NOT_FOUND,
                f"The topic information for org {ORG_ID} and topic {topic} not found. "
                "Ensure the topic name is correct and that the topic exists.",
            )
        return entities

    # ------------------------------------------------------------- unary calls
    def GetTopic(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authenticate(context)
        entities = self._topic(context, request.topic_name)
        return pb.TopicInfo(
            topic_name=request.topic_name,
            tenant_guid=ORG_ID,
            can_publish=False,
            can_subscribe=True,
            schema_id=self.bus.schema_for(entities[0]).id,
            rpc_id=str(uuid.uuid4()),
        )

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authenticate(context)
        schema = self.bus.schema(request.schema_id)
        if schema is None:
            _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                SCHEMA_NOT_FOUND,
                f"The schema {request.schema_id} was not found.",
            )
        return pb.SchemaInfo(schema_json=schema.json, schema_id=schema.id, rpc_id=str(uuid.uuid4()))

    def _unimplemented(self, context: grpc.ServicerContext, name: str) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by the emulator")
        raise AssertionError("unreachable")

    def Publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._unimplemented(context, "Publish")

    def PublishStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self._unimplemented(context, "PublishStream")

    def ManagedSubscribe(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self._unimplemented(context, "ManagedSubscribe")

    # ------------------------------------------------------------- Subscribe
    def Subscribe(self, request_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        token = self._authenticate(context)
        bus = self.bus
        stream = bus.open_stream()
        rpc_id = str(uuid.uuid4())

        def wake() -> None:
            with bus.cond:
                stream.client_done = True
                bus.cond.notify_all()

        def read() -> None:
            try:
                for request in request_iterator:
                    with bus.cond:
                        stream.inbox.append(request)
                        bus.cond.notify_all()
            except grpc.RpcError:
                pass
            except Exception:  # the client went away mid-read
                log.debug("pubsub stream %s reader stopped", stream.id, exc_info=True)
            wake()

        context.add_callback(wake)
        threading.Thread(target=read, name=f"pubsub-read-{stream.id}", daemon=True).start()
        try:
            yield from self._serve(stream, token, rpc_id, context)
        finally:
            bus.close_stream(stream)

    def _serve(
        self, stream: Stream, token: str, rpc_id: str, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        bus = self.bus
        entities: list[str] | None = None
        cursor = 0
        idle_since = last_response = time.monotonic()
        while True:
            with bus.cond:
                while True:  # wait for something to do
                    if stream.dropped or bus.closed:
                        break
                    if stream.client_done or not context.is_active():
                        return
                    if stream.stalled:  # silent until dropped or cancelled by the client
                        bus.cond.wait(1.0)
                        continue
                    if stream.inbox:
                        break
                    now = time.monotonic()
                    if entities is not None and stream.pending > 0:
                        if cursor < bus.horizon or bus.after(entities, cursor, 1):
                            break
                        deadline = last_response + bus.settings.keepalive_s
                    else:
                        deadline = idle_since + bus.settings.idle_timeout_s
                    if now >= deadline:
                        break
                    bus.cond.wait(min(deadline - now, 1.0))
                requests, stream.inbox = stream.inbox, []
                dropped = stream.dropped or bus.closed
                settings = bus.settings
            if dropped:
                _fail(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    UNAVAILABLE,
                    "The service is unavailable. Try again later.",
                )
            for request in requests:
                idle_since = time.monotonic()
                if request.auth_refresh:
                    token = request.auth_refresh
                if entities is None:
                    entities = self._topic(context, request.topic_name)
                    stream.topic = request.topic_name
                    cursor = self._start(context, request)
                elif request.topic_name and request.topic_name != stream.topic:
                    _fail(
                        context,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        INVALID_REQUEST,
                        f"The topic {request.topic_name} differs from this stream's topic "
                        f"{stream.topic}.",
                    )
                if request.num_requested < 0:
                    _fail(
                        context,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        INVALID_REQUEST,
                        "num_requested must not be negative.",
                    )
                with bus.cond:  # more than 100 outstanding is clamped
                    stream.pending = min(MAX_OUTSTANDING, stream.pending + request.num_requested)
            if not self._token_ok(token):
                _fail(
                    context,
                    grpc.StatusCode.UNAUTHENTICATED,
                    AUTH_ERROR,
                    "An authentication exception occurred. "
                    "Provide valid authentication via metadata headers.",
                )
            now = time.monotonic()
            if entities is None or stream.pending == 0:
                if now - idle_since >= settings.idle_timeout_s:
                    self._idle(context, settings.idle_timeout_s)
                continue
            keepalive_due = now - last_response >= settings.keepalive_s
            response = self._next(context, stream, entities, cursor, rpc_id, keepalive_due)
            if response is None:
                continue
            cursor = int.from_bytes(response.latest_replay_id, "big")
            last_response = time.monotonic()
            if stream.pending == 0:
                idle_since = last_response
            yield response

    def _idle(self, context: grpc.ServicerContext, seconds: float) -> NoReturn:
        _fail(
            context,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            IDLE_CLOSED,
            f"The stream was closed: no FetchRequest arrived within {seconds:g} s "
            "while no events were requested.",
        )

    def _start(self, context: grpc.ServicerContext, request: Any) -> int:
        """The replay position a new subscription starts after."""
        bus = self.bus
        with bus.cond:
            if request.replay_preset == pb.ReplayPreset.EARLIEST:
                return bus.horizon
            if request.replay_preset != pb.ReplayPreset.CUSTOM:
                return bus.latest
            raw = request.replay_id
            replay = int.from_bytes(raw, "big") if len(raw) == 8 else None
            latest, horizon = bus.latest, bus.horizon
        if replay is None or replay > latest:
            _fail(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_INVALID,
                f"The Replay ID validation failed: {raw.hex()} is not a replay id of this topic.",
            )
        if replay <= horizon:
            _fail(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_CORRUPTED,
                f"The replay ID {raw.hex()} is invalid or outside the retention window; "
                "subscribe with EARLIEST or LATEST.",
            )
        return replay

    def _next(
        self,
        context: grpc.ServicerContext,
        stream: Stream,
        entities: list[str],
        cursor: int,
        rpc_id: str,
        keepalive_due: bool,
    ) -> Any | None:
        """The next response owed: events, a keepalive, or None (nothing to send yet)."""
        bus = self.bus
        with bus.cond:
            if stream.pending <= 0:
                return None
            # a stream that fell behind the retention window lost events to it
            skipped = cursor < bus.horizon
            events: list[Event] = [] if skipped else bus.after(entities, cursor, stream.pending)
            granted = bus.take_allocation(len(events)) if events else 0
            if events and granted:
                events = events[:granted]
                stream.pending -= len(events)
                stream.delivered += len(events)
                latest = events[-1].replay
            elif not events and not skipped and keepalive_due:
                latest = bus.latest  # nothing of this topic up to it is left unsent
            elif not events and not skipped:
                return None
            pending = stream.pending
        if skipped:
            _fail(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_CORRUPTED,
                "The subscription fell behind the retention window; resubscribe.",
            )
        if events and not granted:
            _fail(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                LIMIT_EXCEEDED,
                "The event delivery allocation of this org is used up for the last 24 hours.",
            )
        return pb.FetchResponse(
            events=[
                pb.ConsumerEvent(
                    event=pb.ProducerEvent(id=e.event_id, schema_id=e.schema_id, payload=e.payload),
                    replay_id=encode_replay(e.replay),
                )
                for e in events
            ],
            latest_replay_id=encode_replay(latest),
            rpc_id=rpc_id,
            pending_num_requested=pending,
        )
