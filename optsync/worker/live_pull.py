"""The worker thread that runs the live pull: one subscriber per installation.

Every tick (1 s) the thread reads the settings afresh (mode, field, poll interval; the
live pull runs only while Sync to Salesforce is on) and takes or renews the lease
(``store.live_pull.acquire``, on the database's clock, 15 s). Only the holder works; a
worker that fails to renew stops its streams when its lease would run out by its own
monotonic clock (measured from *before* the renewal was asked, so always earlier than
the database's expiry), and another worker takes over once the database's clock passes
the expiry: never two subscribers at once, a take-over within seconds.

For each object (Contact, Lead, and Account when the org has Person Accounts: the
Account describe has ``IsPersonAccount``, asked once per gateway) the holder keeps a
status of the state machine (``domain.live_pull.transition``):

* ``cdc``/``auto``: look the topic up (``GetTopic``); subscribe after the stored replay
  id (``CUSTOM``), or new events only (``LATEST``) when there is none; consume the stream
  in a thread of its own (``services.live_pull.stream``). The watchdog rebuilds a stream
  silent for 300 s; every reconnect backs off (``reconnect_at``). A lost replay id, an
  overflow or an exhausted allocation is followed by a catch-up poll from the last
  commit time, then a new stream.
* Whenever an object has no live stream (polling, reconnecting) the poller runs every
  poll interval; after a ``LATEST`` subscribe it also runs until one poll has covered the
  moment the stream opened, so nothing between the catch-up and the new stream is lost.
* ``auto`` with the topic unavailable polls, and looks again every 10 minutes.

The holder also keeps the record mirror's watermark moving (:meth:`LivePull.watermark`):
each stream answer and each poll moves ``salesforce_mirror.through`` as far as every
object is covered at that moment — a live stream on its stored replay chain, or a poll
window's end — and not at all while an object is covered by nothing (its stream down
and no poll since). Only a trusted mirror's watermark moves.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from optsync.bootstrap import Context
from optsync.domain.live_pull import (
    CDC_RECHECK,
    OBJECTS,
    PERSON_ACCOUNTS,
    TOPICS,
    WATCHDOG_S,
    Cover,
    Mode,
    Signal,
    Status,
    effective_mode,
    polls,
    reconnect_at,
    stalled,
    transition,
    watermark,
)
from optsync.metrics import LIVE_RECONNECTS
from optsync.salesforce import soql
from optsync.salesforce.gateway import SalesforceGateway
from optsync.salesforce.pubsub import PubSubClient, PubSubError, Stream
from optsync.services.live_pull.poller import poll_object
from optsync.services.live_pull.stream import Ending, consume
from optsync.services.sync_settings import get_settings
from optsync.store import live_pull as state_store
from optsync.store import runs
from optsync.worker.gateways import GatewayProvider

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=15)
RENEW_EVERY_S = 3.0
KEEPER_TICK_S = 1.0
SAFETY_S = 3.0
"""A holder stops this long before its lease would run out by its own clock."""


@dataclass
class ObjectPull:
    obj: str
    status: Status = Status.OFF
    detail: str | None = None
    stream: Stream | None = None
    thread: threading.Thread | None = None
    ending: Ending | None = None
    failures: int = 0
    next_connect: datetime | None = None
    polled_at: datetime | None = None
    """When this worker last polled the object (the next poll is due the interval in
    force then later: a changed interval takes effect at once)."""
    next_poll: datetime | None = None
    poll_until: datetime | None = None
    """After a LATEST subscribe: poll until a window has covered this instant."""
    synced_field: str | None = None
    """The synced field the open stream applies; a switch reopens the stream."""
    polled_through: datetime | None = None
    """The end of this worker's last committed poll window of the object."""
    stopped: threading.Event = field(default_factory=threading.Event)

    def cover(self) -> Cover:
        """How the object's changes reach the mirror now: a live stream that carries the
        chain (its LATEST start covered by a poll), or the last poll window."""
        thread = self.thread
        live = (
            self.status is Status.LIVE
            and thread is not None
            and thread.is_alive()
            and self.ending is None
            and self.poll_until is None
        )
        return Cover(live=live, polled_through=self.polled_through)


class LivePull:
    """The live-pull loop of one worker (``run`` is the thread's target)."""

    def __init__(
        self,
        ctx: Context,
        stop: threading.Event,
        *,
        holder: str,
        gateways: GatewayProvider | None = None,
        tick_s: float = 1.0,
        watchdog_s: float = WATCHDOG_S,
        pubsub_url: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.stop = stop
        self.holder = holder
        self.gateways = gateways or GatewayProvider(ctx)
        self.tick_s = tick_s
        self.watchdog_s = watchdog_s
        self.pubsub_url = pubsub_url or ctx.settings.sf_pubsub_url
        self.objects = {obj: ObjectPull(obj) for obj in OBJECTS}
        self.mirrored: frozenset[str] = frozenset(soql.OBJECTS)
        """The objects the mirror's last read covered (``store.runs.last_read_objects``,
        refreshed each tick): Account too once the nightly has read the Person Accounts."""
        self._valid_until = 0.0  # monotonic: the lease holds until then, by our clock
        self._renewed_at = float("-inf")
        self._client: PubSubClient | None = None
        self._client_gateway: SalesforceGateway | None = None
        self._rng = random.Random()
        self.wanted = threading.Event()

    # -- the lease ----------------------------------------------------------------------
    def lease_ok(self) -> bool:
        return time.monotonic() < self._valid_until

    def _renew(self) -> None:
        if self.lease_ok() and time.monotonic() - self._renewed_at < RENEW_EVERY_S:
            return
        asked = time.monotonic()
        try:
            with self.ctx.db.transaction(timeout_s=5.0) as session:
                expires = state_store.acquire(session, self.holder, LEASE_TTL)
        except Exception:
            log.exception("could not renew the live-pull lease")
            return
        if expires is None:
            self._valid_until = 0.0
            return
        if not self.lease_ok():
            log.info("holding the live-pull lease", extra={"worker": self.holder})
        self._renewed_at = asked
        self._valid_until = asked + LEASE_TTL.total_seconds() - SAFETY_S

    def _release(self) -> None:
        if self._valid_until:
            self._valid_until = 0.0
            try:
                with self.ctx.db.transaction(timeout_s=5.0) as session:
                    state_store.release(session, self.holder)
            except Exception:
                log.exception("could not release the live-pull lease")

    def keep_lease(self) -> None:
        """The lease keeper (a thread of its own, so a long poll or a stuck stream never
        delays a renewal): holds the lease while the live pull is wanted, and cancels
        every stream the moment the lease is not (or no longer surely) held."""
        try:
            while not self.stop.is_set():
                if self.wanted.is_set():
                    self._renew()
                else:
                    self._release()
                if not self.lease_ok():
                    self._cancel_streams()
                self.stop.wait(KEEPER_TICK_S)
        finally:
            self._cancel_streams()
            self._release()

    def _cancel_streams(self) -> None:
        for pull in self.objects.values():
            pull.stopped.set()
            stream = pull.stream
            if stream is not None:
                stream.cancel()

    # -- the mirror's watermark -----------------------------------------------------------
    def watermark(self, obj: str, candidate: datetime, *, polled: bool = False) -> datetime | None:
        """How far the mirror's watermark may move now that ``obj``'s reader mirrored
        ``candidate`` (a commit time, or with ``polled`` the end of a poll window), given
        how every other object is covered (``domain.live_pull.watermark``). Called from
        the stream threads and the loop, inside their transactions."""
        covers = {o: p.cover() for o, p in self.objects.items()}
        if polled:
            covers[obj] = Cover(polled_through=candidate)
        return watermark(candidate, covers, self.mirrored)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        keeper = threading.Thread(target=self.keep_lease, name="optsync-live-lease", daemon=True)
        keeper.start()
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception:  # a database or Salesforce blip must not kill the worker
                    log.exception("live-pull tick failed; trying again")
                self.stop.wait(self.tick_s)
        finally:
            self.wanted.clear()
            self._stop_all()
            keeper.join(10)
            if self._client is not None:
                self._client.close()

    def tick(self) -> None:
        with self.ctx.db.transaction() as session:
            settings = get_settings(session)
            self.mirrored = frozenset(runs.last_read_objects(session) or soql.OBJECTS)
        mode = effective_mode(settings.live_pull, settings.sync_enabled)
        gateway = self.gateways() if mode is not Mode.OFF else None
        if mode is Mode.OFF or gateway is None:
            self.wanted.clear()
            self._stop_all()
            return
        self.wanted.set()
        if not self.lease_ok():
            self._stop_all()
            return
        if PERSON_ACCOUNTS not in self.objects and gateway.has_person_accounts():
            # a new dict, not an insert: the stream threads and the lease keeper iterate it
            self.objects = {**self.objects, PERSON_ACCOUNTS: ObjectPull(PERSON_ACCOUNTS)}
        for pull in self.objects.values():
            if not self.lease_ok():
                return
            self._step(pull, mode, gateway, settings.salesforce_field, settings.poll_interval_s)

    def _step(
        self,
        pull: ObjectPull,
        mode: Mode,
        gateway: SalesforceGateway,
        field_name: str,
        interval_s: int,
    ) -> None:
        now = self.ctx.clock()
        if pull.status is Status.OFF:
            self._signal(pull, Signal.START, mode, None)
        if mode is Mode.POLL:
            self._end_stream(pull)
            self._signal(pull, Signal.START, mode, None)
        elif pull.thread is not None and pull.synced_field != field_name:
            # the synced field was switched: reopen after the stored replay id with it
            self._end_stream(pull)
            self._signal(pull, Signal.START, mode, None)
        elif pull.thread is not None:
            self._watch(pull, mode, now)
        elif pull.status is Status.CATCHING_UP:
            covered = self._poll(pull, gateway, field_name, now, via="catch_up")
            if covered is None or covered < now:
                pull.poll_until = now  # the current minute: the next polls cover it
            self._signal(pull, Signal.CAUGHT_UP, mode, pull.detail)
            if pull.next_connect is not None and pull.next_connect > now:
                self._signal(pull, Signal.STREAM_FAILED, mode, pull.detail)
        elif self._connect_due(pull, now) and self.lease_ok():
            self._connect(pull, mode, gateway, field_name, now)
        interval = timedelta(seconds=interval_s)
        if pull.polled_at is not None:
            pull.next_poll = pull.polled_at + interval
        due = pull.next_poll is None or now >= pull.next_poll
        if due and (polls(pull.status) or pull.poll_until is not None):
            result = self._poll(pull, gateway, field_name, now, via="poll")
            pull.polled_at = now
            pull.next_poll = now + interval
            if pull.poll_until is not None and result and result >= pull.poll_until:
                pull.poll_until = None

    def _connect_due(self, pull: ObjectPull, now: datetime) -> bool:
        if pull.next_connect is not None and now < pull.next_connect:
            return False
        return pull.status in (Status.STARTING, Status.RECONNECTING, Status.POLLING)

    def _client_for(self, gateway: SalesforceGateway) -> PubSubClient:
        if self._client is None or self._client_gateway is not gateway:
            if self._client is not None:
                self._client.close()
            self._client = PubSubClient(self.pubsub_url, gateway)
            self._client_gateway = gateway
        return self._client

    def _connect(
        self,
        pull: ObjectPull,
        mode: Mode,
        gateway: SalesforceGateway,
        field_name: str,
        now: datetime,
    ) -> None:
        client = self._client_for(gateway)
        topic = TOPICS[pull.obj]
        try:
            client.topic(topic)
        except PubSubError as exc:
            if exc.problem.value == "topic_unavailable":
                self._signal(
                    pull, Signal.TOPIC_UNAVAILABLE, mode, f"CDC not enabled for {pull.obj}"
                )
                pull.next_connect = now + (
                    CDC_RECHECK if mode is Mode.AUTO else timedelta(seconds=60)
                )
            else:
                self._failed(pull, mode, now, str(exc)[:200], "topic")
            return
        except Exception as exc:  # the connection itself (token, network)
            self._failed(pull, mode, now, str(exc)[:200], "connect")
            return
        with self.ctx.db.transaction() as session:
            state = state_store.get_state(session, pull.obj, now)
        try:
            stream = client.subscribe(topic, state.replay_id)
        except Exception as exc:
            self._failed(pull, mode, now, str(exc)[:200], "subscribe")
            return
        if state.replay_id is None:
            pull.poll_until = now
        pull.stream = stream
        pull.synced_field = field_name
        pull.ending = None
        pull.stopped = threading.Event()
        stopped = pull.stopped
        thread = threading.Thread(
            target=self._consume,
            args=(pull, stream, gateway, field_name, stopped),
            name=f"optsync-live-{pull.obj.lower()}",
            daemon=True,
        )
        pull.thread = thread
        thread.start()
        log.info(
            "subscribed to Change Data Capture",
            extra={
                "object": pull.obj,
                "resume": state.replay_id is not None,
                "worker": self.holder,
            },
        )
        self._signal(pull, Signal.SUBSCRIBED, mode, None)

    def _consume(
        self,
        pull: ObjectPull,
        stream: Stream,
        gateway: SalesforceGateway,
        field_name: str,
        stopped: threading.Event,
    ) -> None:
        try:
            pull.ending = consume(
                self.ctx.db,
                gateway,
                stream,
                pull.obj,
                field_name,
                clock=self.ctx.clock,
                stop=stopped,
                lease_ok=self.lease_ok,
                watermark=lambda at: self.watermark(pull.obj, at),
                chained=lambda: pull.poll_until is None,
            )
        except Exception as exc:
            log.exception("the live-pull stream failed", extra={"object": pull.obj})
            pull.ending = Ending(Signal.STREAM_FAILED, str(exc)[:200])
        finally:
            stream.cancel()

    def _watch(self, pull: ObjectPull, mode: Mode, now: datetime) -> None:
        thread, stream = pull.thread, pull.stream
        assert thread is not None and stream is not None
        if thread.is_alive():
            silent_since = now - timedelta(seconds=time.monotonic() - stream.last_response)
            if not stalled(silent_since, now, self.watchdog_s):
                if pull.status is Status.LIVE:
                    pull.failures = 0 if pull.failures and pull.ending is None else pull.failures
                return
            LIVE_RECONNECTS.labels(object=pull.obj, reason="stalled").inc()
            log.warning("the Change Data Capture stream went silent; rebuilding it")
            self._end_stream(pull)
            self._failed(pull, mode, now, "the stream went silent", None, Signal.STALLED)
            return
        ending = pull.ending or Ending(Signal.STREAM_FAILED, "the stream ended")
        pull.thread, pull.stream = None, None
        if ending.signal is Signal.STOP:
            self._signal(pull, Signal.START, mode, None)
            return
        LIVE_RECONNECTS.labels(object=pull.obj, reason=ending.signal.value).inc()
        if ending.signal is Signal.REPLAY_LOST:
            pull.failures += 1
            pull.next_connect = reconnect_at(
                now,
                pull.failures,
                self._rng.random,
                allocation_exhausted=ending.allocation_exhausted,
            )
            self._signal(pull, Signal.REPLAY_LOST, mode, ending.detail)
        elif ending.signal is Signal.TOPIC_UNAVAILABLE:
            self._signal(pull, Signal.TOPIC_UNAVAILABLE, mode, ending.detail)
            pull.next_connect = now + CDC_RECHECK
        else:
            self._failed(pull, mode, now, ending.detail, None)

    def _failed(
        self,
        pull: ObjectPull,
        mode: Mode,
        now: datetime,
        detail: str,
        reason: str | None,
        signal: Signal = Signal.STREAM_FAILED,
    ) -> None:
        if reason is not None:
            LIVE_RECONNECTS.labels(object=pull.obj, reason=reason).inc()
        pull.failures += 1
        pull.next_connect = reconnect_at(now, pull.failures, self._rng.random)
        self._signal(pull, signal, mode, detail)

    def _poll(
        self,
        pull: ObjectPull,
        gateway: SalesforceGateway,
        field_name: str,
        now: datetime,
        *,
        via: str,
    ) -> datetime | None:
        try:
            result = poll_object(
                self.ctx.db,
                gateway,
                pull.obj,
                field_name,
                now,
                via=via,
                watermark=lambda at: self.watermark(pull.obj, at, polled=True),
            )
        except Exception as exc:
            log.warning(
                "live-pull poll failed; trying again next interval",
                extra={"object": pull.obj, "error": type(exc).__name__},
            )
            return None
        if result.covered is not None and (
            pull.polled_through is None or result.covered > pull.polled_through
        ):
            pull.polled_through = result.covered
        return result.covered

    def _signal(self, pull: ObjectPull, signal: Signal, mode: Mode, detail: str | None) -> None:
        status = transition(pull.status, signal, mode)
        if signal is Signal.SUBSCRIBED:
            pull.failures = 0
        if status is pull.status and detail == pull.detail:
            return
        pull.status, pull.detail = status, detail
        now = self.ctx.clock()
        with self.ctx.db.transaction() as session:
            state_store.get_state(session, pull.obj, now)
            state_store.set_status(
                session,
                pull.obj,
                now,
                mode="poll" if polls(status) or mode is Mode.POLL else "cdc",
                status=status.value,
                detail=detail,
            )

    def _end_stream(self, pull: ObjectPull) -> None:
        if pull.stream is not None:
            pull.stopped.set()
            pull.stream.cancel()
        if pull.thread is not None:
            pull.thread.join(10)
        pull.thread, pull.stream = None, None

    def _stop_all(self) -> None:
        for pull in self.objects.values():
            self._end_stream(pull)
            pull.status = Status.OFF
