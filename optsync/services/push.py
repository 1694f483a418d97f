"""Push claimed outbox rows to Salesforce and record what became of each.

An opt-out belongs to the address (docs/sync.md "Records per address"), so one push sets
the field on every record that carries its person's address. One cycle:

1. claim up to ``batch_size * concurrency`` due pushes and re-check them (a re-subscribe
   since the claim cancelled a push: it is not sent);
2. find the addresses' records: from the mirror alone when it can be trusted
   (:func:`optsync.store.records.mirror_trusted`), else by one batched lookup
   (``POST /composite`` with a query per object, :meth:`SalesforceGateway.find_records`)
   whose results go into the mirror first;
3. send every record still to set (settable, not known as set, not already set by this
   push on an earlier attempt), plus the person's linked record, packed 200 to a
   composite call, the calls in parallel; converted Leads and merged records are
   followed per record (:mod:`optsync.services.follow`);
4. settle each push from its records' outcomes (:func:`settle_push`), write every
   record's outcome in ``push_records``, mark the records set in the mirror and link the
   person to the primary record the linking rule picks. A push about to settle ``sent``
   (or ``not_linked``) whose address gained a record meanwhile — mirrored by a pull
   after this push took its view, a record it never tried — runs again at once instead
   (``store.outbox.rerun_for_new_records``).

A push with no record anywhere settles ``not_linked`` ("Not in Salesforce": not a
failure); ``store.optouts.requeue_for_addresses`` re-opens it when a record with the
address appears. The field written follows the settings at the time of the cycle: sync
off → ``HasOptedOutOfEmail``; sync on → the selected field (its ``Person…``/``__pc`` form
on Person Accounts).

Claims are leases: a worker that dies mid-cycle leaves rows ``in_flight`` until the lease
expires, then any worker takes them over. Pushes are therefore at-least-once; setting a
checkbox to true twice is harmless.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from optsync.clock import Clock
from optsync.domain.failures import Classification
from optsync.domain.records import (
    LinkRule,
    RecordView,
    parse_link_rule,
    primary_record,
    records_to_set,
)
from optsync.domain.retry import DecisionKind, RetryPolicy, decide
from optsync.metrics import (
    PUSH_BATCH_SECONDS,
    PUSHES_FAILED,
    PUSHES_FOLLOWED,
    PUSHES_RETRIED,
    PUSHES_SENT,
)
from optsync.salesforce.gateway import RecordResult, SalesforceCallError, Target
from optsync.salesforce.lookup import FoundRecord
from optsync.services.follow import Attempt, Failed, follow, needs_following
from optsync.services.sync_settings import get_settings
from optsync.store.db import Database
from optsync.store.optouts import begin_write
from optsync.store.outbox import (
    ClaimedPush,
    RecordOutcome,
    Settlement,
    claim_due,
    record_outcomes,
    records_sent,
    rerun_for_new_records,
    settle,
    still_wanted,
)
from optsync.store.persons import relink
from optsync.store.records import (
    MirroredRecord,
    field_column,
    field_values,
    forget_missing,
    mark_opted_out,
    mirror_trusted,
    records_by_email,
    upsert_records,
)

BATCH_SIZE = 200  # records per sObject Collections call
DEFAULT_LEASE = timedelta(minutes=2)
log = logging.getLogger(__name__)

# Parallel composite calls per cycle during a backlog; well under Salesforce's limit of 25
# concurrent long-running requests, and each call is short.
DEFAULT_CONCURRENCY = 4


class PushGateway(Protocol):
    """What the pusher needs of ``optsync.salesforce.gateway.SalesforceGateway``."""

    def set_opt_out(self, targets: Sequence[Target], field: str) -> list[RecordResult]: ...

    def converted_contacts(self, lead_ids: Sequence[str]) -> dict[str, str | None]: ...

    def merged_masters(self, ids: Sequence[str], object: str) -> dict[str, str | None]: ...

    def find_records(self, emails: Sequence[str], field: str) -> list[FoundRecord]: ...


@dataclass
class PushReport:
    """What one or more cycles did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    not_linked: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    followed: int = 0
    cancelled: int = 0
    paused_until: datetime | None = None
    records_sent: int = 0
    records_failed: int = 0
    lookups: int = 0
    """Addresses looked up in Salesforce (0 when the mirror was trusted)."""
    rerun: int = 0
    """Pushes run again at once: their address gained a record while they were in
    flight (``store.outbox.rerun_for_new_records``)."""

    def merge(self, other: PushReport) -> None:
        self.claimed += other.claimed
        self.cancelled += other.cancelled
        self.sent += other.sent
        self.retried += other.retried
        self.not_linked += other.not_linked
        self.failed.update(other.failed)
        self.followed += other.followed
        self.paused_until = other.paused_until or self.paused_until
        self.records_sent += other.records_sent
        self.records_failed += other.records_failed
        self.lookups += other.lookups
        self.rerun += other.rerun

    def as_dict(self) -> dict[str, object]:
        return {
            "claimed": self.claimed,
            "sent": self.sent,
            "retried": self.retried,
            "not_linked": self.not_linked,
            "failed": dict(self.failed),
            "followed": self.followed,
            "cancelled": self.cancelled,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "records_sent": self.records_sent,
            "records_failed": self.records_failed,
            "lookups": self.lookups,
            "rerun": self.rerun,
        }


class _Attempt(Attempt[ClaimedPush]):
    """A claimed push on its way to one record (see :mod:`optsync.services.follow`)."""

    @property
    def push(self) -> ClaimedPush:
        return self.owner


class Pusher:
    """Pushes outbox rows for one worker. Thread-compatible, not thread-safe."""

    def __init__(
        self,
        db: Database,
        gateway: Callable[[], PushGateway | None],
        *,
        worker: str,
        clock: Clock,
        policy: RetryPolicy | None = None,
        rng: Callable[[], float] | None = None,
        batch_size: int = BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.worker = worker
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.random
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.lease = lease

    def run_once(self) -> PushReport:
        """One cycle (see the module docstring). Claims nothing while there is no
        Salesforce connection.

        Claims up to ``batch_size * concurrency`` pushes and sends their records as
        composite calls of up to ``batch_size`` records in parallel, so a burst drains
        ``concurrency`` times faster while a trickle still goes out at once in one small
        call.
        """
        gw = self.gateway()
        if gw is None:
            return PushReport()
        with self.db.transaction() as session:
            settings = get_settings(session)
            field_name = settings.push_field()
            rule = parse_link_rule(settings.link_rule)
            claimed = claim_due(
                session,
                worker=self.worker,
                now=self.clock(),
                limit=self.batch_size * self.concurrency,
                lease=self.lease,
            )
        report = PushReport(claimed=len(claimed))
        if not claimed:
            return report
        # the re-check just before the send: a re-subscribe since the claim cancelled it
        with self.db.transaction() as session:
            wanted = still_wanted(session, [c.push_id for c in claimed])
            trusted = mirror_trusted(session, self.clock())
            # a push re-opened (a retry, after its fix) sends only what it has not set yet
            already = records_sent(session, [c.push_id for c in claimed], field_name)
        report.cancelled = len(claimed) - len(wanted)
        claimed = [c for c in claimed if c.push_id in wanted]
        if not claimed:
            return report
        with PUSH_BATCH_SECONDS.time():
            settlements, relinks, outcomes, tried = self._push_all(
                gw, claimed, field_name, rule, trusted, already, report
            )
        links = {c.push_id: c.salesforce_id for c in claimed}
        now = self.clock()
        with self.db.transaction() as session:
            # the lock order of every pull that mirrors records (``records_pull.absorb``):
            # records, then persons, then pushes; the other way round, a pull mirroring
            # this push's own writes and linking its person deadlocks with it
            begin_write(session)
            mark_opted_out(
                session,
                [o.record_id for o in outcomes if o.state == "sent"],
                field_column(field_name),
                now,
            )
            relink(session, relinks, now)
            final = rerun_for_new_records(
                session, self.worker, settlements, now, field=field_name, tried=tried
            )
            settle(session, self.worker, final, now, claimed_links=links)
            record_outcomes(session, outcomes, now)
        for before, after in zip(settlements, final, strict=True):
            if after is not before:
                report.rerun += 1
                report.sent -= before.state == "sent"
                report.not_linked -= before.state == "not_linked"
        return report

    def drain(self, *, max_cycles: int = 1_000_000) -> PushReport:
        """Cycle until nothing is due now (retries scheduled later keep waiting)."""
        total = PushReport()
        for _ in range(max_cycles):
            report = self.run_once()
            total.merge(report)
            if report.claimed == 0 or report.paused_until is not None:
                break
        return total

    # -- one cycle ---------------------------------------------------------------------
    def _mirror(self, emails: Sequence[str], field_name: str) -> dict[str, list[RecordView]]:
        with self.db.transaction() as session:
            return records_by_email(session, emails, field_column(field_name))

    def _lookup(self, gw: PushGateway, emails: Sequence[str], field_name: str) -> None:
        """Find the addresses' records in Salesforce and put them in the mirror; mirrored
        records the lookup did not return no longer carry their address (raises
        :class:`SalesforceCallError` when the lookup failed)."""
        started = self.clock()
        found = gw.find_records(emails, field_name)
        mirrored = [
            MirroredRecord(
                r.record_id,
                r.object,  # type: ignore[arg-type]
                r.email,
                *field_values(field_name, r.opted_out),
                converted=r.converted,
                system_modstamp=r.system_modstamp,
            )
            for r in found
        ]
        with self.db.transaction() as session:
            upsert_records(session, mirrored, self.clock())
            forget_missing(session, emails, [r.record_id for r in found], started)

    def _push_all(
        self,
        gw: PushGateway,
        claimed: list[ClaimedPush],
        field_name: str,
        rule: LinkRule,
        trusted: bool,
        already: dict[int, set[str]],
        report: PushReport,
    ) -> tuple[list[Settlement], dict[int, str], list[RecordOutcome], dict[int, set[str]]]:
        """Two rounds, so the lookup costs no latency: the linked record (and, when the
        mirror is trusted, the mirror's records: then there is no lookup) is sent while
        the lookup runs; the records the lookup found go in a second round, after the
        re-check. An untrusted mirror's other records are not sent before the lookup
        confirmed they still carry the address."""
        emails = sorted({c.email for c in claimed if c.email})
        known = self._mirror(emails, field_name)

        def first(p: ClaimedPush) -> list[RecordView]:
            views = known.get(p.email, [])
            return views if trusted else [v for v in views if v.record_id == p.salesforce_id]

        round1 = {p.push_id: _targets(p, first(p), already.get(p.push_id, set())) for p in claimed}
        lookup_error: SalesforceCallError | None = None
        finished: list[_Outcome] = []
        with ThreadPoolExecutor(1, thread_name_prefix="optsync-lookup") as lookups:
            pending = None
            if not trusted and emails:
                report.lookups += len(emails)
                pending = lookups.submit(self._lookup, gw, emails, field_name)
            finished += self._send_all(
                gw, [_Attempt(p, t) for p in claimed for t in round1[p.push_id]], field_name, report
            )
            if pending is not None:
                try:
                    pending.result()
                except SalesforceCallError as exc:
                    lookup_error = exc
        by_email = self._mirror(emails, field_name) if pending is not None else known
        # the re-check again before the second round: a re-subscribe during the lookup
        with self.db.transaction() as session:
            wanted = still_wanted(session, [c.push_id for c in claimed])
        report.cancelled += len(claimed) - len(wanted)
        claimed = [c for c in claimed if c.push_id in wanted]
        if lookup_error is None:
            round2 = [
                _Attempt(p, t)
                for p in claimed
                for t in _targets(
                    p,
                    by_email.get(p.email, []),
                    already.get(p.push_id, set()) | {t.salesforce_id for t in round1[p.push_id]},
                )
            ]
            finished += self._send_all(gw, round2, field_name, report)
        by_push: dict[int, list[_Outcome]] = defaultdict(list)
        for o in finished:
            by_push[o.attempt.push.push_id].append(o)
        settlements: list[Settlement] = []
        relinks: dict[int, str] = {}
        outcomes: list[RecordOutcome] = []
        # every record each push sent or tried, this attempt (a followed record too) and
        # before: what ``rerun_for_new_records`` compares the mirror with
        tried = {p.push_id: set(already.get(p.push_id, ())) for p in claimed}
        for o in finished:
            mine = tried.setdefault(o.attempt.push.push_id, set())
            mine.add(o.attempt.target.salesforce_id)
            if o.attempt.followed_from:
                mine.add(o.attempt.followed_from)
        for push in claimed:
            views = by_email.get(push.email, [])
            primary = _primary(push, views, rule)
            results = by_push.get(push.push_id, [])
            outcomes += [o.record(push.push_id, field_name) for o in results]
            if lookup_error is not None:
                # what was known went out; the push goes by the policy with the lookup's
                # failure and its next attempt sends only what it has not set
                results = [
                    *results,
                    _Outcome(
                        _Attempt(push, Target("", "")),
                        lookup_error.classification,
                        f"the lookup of the address's records failed: {lookup_error}",
                        lookup_error.retry_after_s,
                    ),
                ]
            if not results:
                if push.salesforce_id or any(v.settable for v in views):
                    # every record already carries the field: nothing to send
                    settlements.append(self._sent(push, field_name, primary, None))
                    report.sent += 1
                    if primary and primary.record_id != push.salesforce_id:
                        relinks[push.person_id] = primary.record_id
                else:
                    settlements.append(Settlement(push.push_id, "not_linked"))
                    report.not_linked += 1
                continue
            followed = next(
                (
                    o.attempt.target.salesforce_id
                    for o in results
                    if o.success
                    and push.salesforce_id
                    and o.attempt.followed_from == push.salesforce_id
                ),
                None,
            )
            new_link = followed or (primary.record_id if primary else None)
            if new_link and new_link != push.salesforce_id:
                relinks[push.person_id] = new_link
            settlements.append(self.settle_push(push, results, new_link, report, field_name))
        return settlements, relinks, outcomes, tried

    def _send_all(
        self, gw: PushGateway, attempts: list[_Attempt], field_name: str, report: PushReport
    ) -> list[_Outcome]:
        """``attempts`` packed ``batch_size`` to a call, the calls in parallel."""
        chunks = [
            attempts[i : i + self.batch_size] for i in range(0, len(attempts), self.batch_size)
        ]
        if not chunks:
            return []
        if len(chunks) == 1:
            return self._send(gw, chunks[0], field_name, report)
        finished: list[_Outcome] = []
        reports = [PushReport() for _ in chunks]
        with ThreadPoolExecutor(
            min(len(chunks), self.concurrency), thread_name_prefix="optsync-push"
        ) as pool:
            for part in pool.map(
                lambda n: self._send(gw, chunks[n], field_name, reports[n]), range(len(chunks))
            ):
                finished += part
        report.followed += sum(r.followed for r in reports)
        return finished

    def _send(
        self, gw: PushGateway, attempts: list[_Attempt], field_name: str, report: PushReport
    ) -> list[_Outcome]:
        """Send ``attempts`` (one composite call a round; follows add rounds) and return
        each record's final outcome."""
        done: list[_Outcome] = []
        # the original, then retargets; ends because the follow engine bounds the follows
        while attempts:
            try:
                results = gw.set_opt_out([a.target for a in attempts], field_name)
            except SalesforceCallError as exc:
                done += [
                    _Outcome(a, exc.classification, str(exc), exc.retry_after_s) for a in attempts
                ]
                return done
            attempts = self._settle_results(gw, attempts, results, done, report)
        return done

    def _settle_results(
        self,
        gw: PushGateway,
        attempts: list[_Attempt],
        results: list[RecordResult],
        done: list[_Outcome],
        report: PushReport,
    ) -> list[_Attempt]:
        """Record finished records; return the ones retargeted for another round."""
        to_follow: list[Failed[_Attempt]] = []
        for a, r in zip(attempts, results, strict=True):
            if r.success:
                done.append(_Outcome(a))
                continue
            c = r.classification
            assert c is not None, "a failed record result always carries its classification"
            if needs_following(c):
                to_follow.append(Failed(a, c, r.message or ""))
            else:
                done.append(_Outcome(a, c, r.message or ""))
        if not to_follow:
            return []
        followed = follow(gw, to_follow)
        for kind, n in followed.kinds.items():
            PUSHES_FOLLOWED.labels(kind).inc(n)
        report.followed += len(followed.retargets)
        done += [_Outcome(f.attempt, f.classification, f.message) for f in followed.failures]
        return followed.retargets

    def settle_push(
        self,
        push: ClaimedPush,
        results: Sequence[_Outcome],
        new_link: str | None,
        report: PushReport,
        field_name: str | None = None,
    ) -> Settlement:
        """A push's fate from its records' outcomes:

        * every record set → ``sent``;
        * a record failed and the retry policy retries it (a transient failure, attempts
          left) → ``pending`` at the latest retry time any failed record got; the next
          attempt sends only the records this push has not set yet (``push_records``);
        * otherwise (only permanent failures, or attempts used up) → ``failed`` with the
          first failure's code, message and fix; the records it did set stay recorded
          as set, and a retry after the fix (``optsync push retry``) re-opens this push,
          which again sends only the records not yet set.
        """
        failures = [o for o in results if not o.success]
        report.records_sent += len(results) - len(failures)
        report.records_failed += len(failures)
        if not failures:
            report.sent += 1
            PUSHES_SENT.inc()
            log.debug("push sent", extra={"outbox_id": push.push_id, "person_id": push.person_id})
            return self._sent(push, field_name, None, new_link)
        now = self.clock()
        retry_at: datetime | None = None
        paused = False
        for o in failures:
            assert o.classification is not None
            decision = decide(
                self.policy,
                o.classification,
                push.attempts,
                now,
                self.rng,
                retry_after_s=o.retry_after_s,
            )
            if decision.kind is DecisionKind.GIVE_UP:
                continue
            at = decision.at or now
            retry_at = at if retry_at is None else max(retry_at, at)
            paused = paused or decision.kind is DecisionKind.PAUSE_UNTIL
        first = failures[0]
        assert first.classification is not None
        c = first.classification
        message = first.message
        if len(results) > 1:
            message = f"{len(failures)} of {len(results)} records failed; {message}"
        # ids only, never the person's address; the record named is the first that failed
        ids = {
            "outbox_id": push.push_id,
            "person_id": push.person_id,
            "salesforce_id": first.attempt.target.salesforce_id,
        }
        if retry_at is not None:
            if paused:
                report.paused_until = retry_at
            report.retried += 1
            PUSHES_RETRIED.labels(c.code).inc()
            log.info(
                "push will be retried",
                extra={**ids, "code": c.code, "next_attempt_at": retry_at.isoformat()},
            )
            return Settlement(
                push.push_id,
                "pending",
                next_attempt_at=retry_at,
                code=c.code,
                message=message[:2000],
                fix=c.fix,
            )
        report.failed[c.code] += 1
        PUSHES_FAILED.labels(c.code).inc()
        log.warning("push failed", extra={**ids, "code": c.code})
        return Settlement(
            push.push_id,
            "failed",
            target_id=new_link or first.attempt.target.salesforce_id or None,
            code=c.code,
            message=message[:2000],
            fix=c.fix,
        )

    def _sent(
        self,
        push: ClaimedPush,
        field_name: str | None,
        primary: RecordView | None,
        new_link: str | None,
    ) -> Settlement:
        target = new_link or (primary.record_id if primary else None) or push.salesforce_id
        return Settlement(push.push_id, "sent", field=field_name, target_id=target)


@dataclass(frozen=True)
class _Outcome:
    """One record's final outcome within a push: set, or failed with its classification."""

    attempt: _Attempt
    classification: Classification | None = None
    message: str = ""
    retry_after_s: float | None = None

    @property
    def success(self) -> bool:
        return self.classification is None

    def record(self, push_id: int, field: str) -> RecordOutcome:
        t = self.attempt.target
        if self.classification is None:
            return RecordOutcome(push_id, t.salesforce_id, t.object, "sent", field=field)
        return RecordOutcome(
            push_id,
            t.salesforce_id,
            t.object,
            "failed",
            code=self.classification.code,
            message=self.message[:2000],
            fix=self.classification.fix,
            field=field,
        )


def _primary(push: ClaimedPush, views: Sequence[RecordView], rule: LinkRule) -> RecordView | None:
    """The record the linking rule links the person to, or None (leave the link alone).

    The rule links a person without a link, and re-picks among the address's records
    when the person is linked to one of them; a link to a record that does not carry the
    address (an admin's, an import's choice) is kept. ``off`` never links."""
    if rule == "off":
        return None
    if push.salesforce_id and all(v.record_id != push.salesforce_id for v in views):
        return None
    return primary_record(views, rule, push.salesforce_id)


def _targets(push: ClaimedPush, views: Sequence[RecordView], done: set[str]) -> list[Target]:
    """The records ``push`` sends: every record of the address still to set, and the
    person's linked record (whatever its address: an admin may have linked it), less
    those this push set on an earlier attempt. The linked record is sent even when the
    mirror calls it converted or deleted: the follow engine finds where it went."""
    out: dict[str, Target] = {}
    for v in records_to_set(views):
        out.setdefault(v.record_id, Target(v.record_id, v.object))
    if push.salesforce_id and push.salesforce_object:
        known = next((v for v in views if v.record_id == push.salesforce_id), None)
        if known is None or known.opted_out is not True:
            out.setdefault(push.salesforce_id, Target(push.salesforce_id, push.salesforce_object))
    return [t for rid, t in out.items() if rid not in done]
