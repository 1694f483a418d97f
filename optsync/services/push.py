"""Push claimed outbox rows to Salesforce and record what became of each.

One cycle: claim up to ``batch_size`` due pushes, write the opt-out field on their
Contacts and Leads in one composite call, follow converted Leads and merged records to
the record that lives on (the engine in :mod:`optsync.services.follow`, shared with the
nightly sync), and settle every row: ``sent``, ``pending`` again at the time the
retry policy chose, ``failed`` with the Salesforce code, message and the fix, or
``not_linked``. The field written follows the settings at the time of the cycle: sync off
→ ``HasOptedOutOfEmail``; sync on → the selected field.

Claims are leases: a worker that dies mid-cycle leaves rows ``in_flight`` until the lease
expires, then any worker takes them over. Pushes are therefore at-least-once; setting a
checkbox to true twice is harmless.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from optsync.clock import Clock
from optsync.domain.failures import Classification
from optsync.domain.retry import DecisionKind, RetryPolicy, decide
from optsync.metrics import (
    PUSH_BATCH_SECONDS,
    PUSHES_FAILED,
    PUSHES_FOLLOWED,
    PUSHES_RETRIED,
    PUSHES_SENT,
)
from optsync.salesforce.gateway import RecordResult, SalesforceCallError, Target
from optsync.services.follow import Attempt, Failed, follow, needs_following
from optsync.services.sync_settings import get_settings
from optsync.store.db import Database
from optsync.store.outbox import ClaimedPush, Settlement, claim_due, settle, still_wanted
from optsync.store.persons import relink

BATCH_SIZE = 200  # one sObject Collections call
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

    def merge(self, other: PushReport) -> None:
        self.claimed += other.claimed
        self.cancelled += other.cancelled
        self.sent += other.sent
        self.retried += other.retried
        self.not_linked += other.not_linked
        self.failed.update(other.failed)
        self.followed += other.followed
        self.paused_until = other.paused_until or self.paused_until

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
        """One cycle. Claims nothing while there is no Salesforce connection.

        Claims up to ``batch_size * concurrency`` rows and sends them as that many
        composite calls in parallel, so a burst drains ``concurrency`` times faster while a
        trickle still goes out at once in one small call.
        """
        gw = self.gateway()
        if gw is None:
            return PushReport()
        with self.db.transaction() as session:
            field_name = get_settings(session).push_field()
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
        report.cancelled = len(claimed) - len(wanted)
        claimed = [c for c in claimed if c.push_id in wanted]
        if not claimed:
            return report
        chunks = [claimed[i : i + self.batch_size] for i in range(0, len(claimed), self.batch_size)]
        with PUSH_BATCH_SECONDS.time():
            if len(chunks) == 1:
                outcomes = [self._push_chunk(gw, chunks[0], field_name)]
            else:
                with ThreadPoolExecutor(len(chunks), thread_name_prefix="optsync-push") as pool:
                    outcomes = list(
                        pool.map(lambda chunk: self._push_chunk(gw, chunk, field_name), chunks)
                    )
        settlements: list[Settlement] = []
        relinks: dict[int, str] = {}
        for chunk_settlements, chunk_relinks, chunk_report in outcomes:
            settlements += chunk_settlements
            relinks.update(chunk_relinks)
            chunk_report.claimed = 0
            report.merge(chunk_report)
        links = {c.push_id: c.salesforce_id for c in claimed}
        with self.db.transaction() as session:
            relink(session, relinks, self.clock())
            settle(session, self.worker, settlements, self.clock(), claimed_links=links)
        return report

    def _push_chunk(
        self, gw: PushGateway, chunk: list[ClaimedPush], field_name: str
    ) -> tuple[list[Settlement], dict[int, str], PushReport]:
        report = PushReport()
        settlements, relinks = self._push(gw, chunk, field_name, report)
        return settlements, relinks, report

    def drain(self, *, max_cycles: int = 1_000_000) -> PushReport:
        """Cycle until nothing is due now (retries scheduled later keep waiting)."""
        total = PushReport()
        for _ in range(max_cycles):
            report = self.run_once()
            total.merge(report)
            if report.claimed == 0 or report.paused_until is not None:
                break
        return total

    # -- one batch ---------------------------------------------------------------------
    def _push(
        self, gw: PushGateway, claimed: list[ClaimedPush], field_name: str, report: PushReport
    ) -> tuple[list[Settlement], dict[int, str]]:
        settlements: list[Settlement] = []
        attempts: list[_Attempt] = []
        for push in claimed:
            if not push.salesforce_id or not push.salesforce_object:
                settlements.append(Settlement(push.push_id, "not_linked"))
                report.not_linked += 1
                continue
            attempts.append(_Attempt(push, Target(push.salesforce_id, push.salesforce_object)))
        relinks: dict[int, str] = {}
        # the original, then retargets; ends because the follow engine bounds the follows
        while attempts:
            try:
                results = gw.set_opt_out([a.target for a in attempts], field_name)
            except SalesforceCallError as exc:
                for a in attempts:
                    settlements.append(
                        self._retry_or_fail(
                            a, exc.classification, str(exc), report, exc.retry_after_s
                        )
                    )
                return settlements, relinks
            attempts = self._settle_results(
                gw, attempts, results, field_name, settlements, relinks, report
            )
        return settlements, relinks

    def _settle_results(
        self,
        gw: PushGateway,
        attempts: list[_Attempt],
        results: list[RecordResult],
        field_name: str,
        settlements: list[Settlement],
        relinks: dict[int, str],
        report: PushReport,
    ) -> list[_Attempt]:
        """Settle finished records; return the ones retargeted for another round."""
        to_follow: list[Failed[_Attempt]] = []
        for a, r in zip(attempts, results, strict=True):
            if r.success:
                settlements.append(
                    Settlement(
                        a.push.push_id, "sent", field=field_name, target_id=a.target.salesforce_id
                    )
                )
                report.sent += 1
                PUSHES_SENT.inc()
                log.debug("push sent", extra=_ids(a))
                if a.followed_from is not None:
                    relinks[a.push.person_id] = a.target.salesforce_id
                continue
            c = r.classification
            assert c is not None, "a failed record result always carries its classification"
            if needs_following(c):
                to_follow.append(Failed(a, c, r.message or ""))
            else:
                settlements.append(self._retry_or_fail(a, c, r.message or "", report))
        return self._follow(gw, to_follow, settlements, report)

    def _follow(
        self,
        gw: PushGateway,
        failed: list[Failed[_Attempt]],
        settlements: list[Settlement],
        report: PushReport,
    ) -> list[_Attempt]:
        """Follow conversions and merges with the shared engine; settle what it gives up
        (an unfollowable record is permanent; a failed lookup call goes by the policy)."""
        if not failed:
            return []
        followed = follow(gw, failed)
        for kind, n in followed.kinds.items():
            PUSHES_FOLLOWED.labels(kind).inc(n)
        report.followed += len(followed.retargets)
        for f in followed.failures:
            settlements.append(self._retry_or_fail(f.attempt, f.classification, f.message, report))
        return followed.retargets

    def _retry_or_fail(
        self,
        a: _Attempt,
        c: Classification,
        message: str,
        report: PushReport,
        retry_after_s: float | None = None,
    ) -> Settlement:
        """``retry_after_s``: the call's ``Retry-After``; the retry is never sooner."""
        now = self.clock()
        decision = decide(
            self.policy, c, a.push.attempts, now, self.rng, retry_after_s=retry_after_s
        )
        if decision.kind is DecisionKind.GIVE_UP:
            return self._fail(a, c, message, report)
        at = decision.at or now
        if decision.kind is DecisionKind.PAUSE_UNTIL:
            report.paused_until = at
        report.retried += 1
        PUSHES_RETRIED.labels(c.code).inc()
        log.info(
            "push will be retried",
            extra={**_ids(a), "code": c.code, "next_attempt_at": at.isoformat()},
        )
        return Settlement(
            a.push.push_id,
            "pending",
            next_attempt_at=at,
            code=c.code,
            message=message[:2000],
            fix=c.fix,
        )

    def _fail(self, a: _Attempt, c: Classification, message: str, report: PushReport) -> Settlement:
        report.failed[c.code] += 1
        PUSHES_FAILED.labels(c.code).inc()
        log.warning("push failed", extra={**_ids(a), "code": c.code})
        return Settlement(
            a.push.push_id,
            "failed",
            target_id=a.target.salesforce_id,
            code=c.code,
            message=message[:2000],
            fix=c.fix,
        )


def _ids(a: _Attempt) -> dict[str, object]:
    """The fields every push log line carries (ids only: never the person's address)."""
    return {
        "outbox_id": a.push.push_id,
        "person_id": a.push.person_id,
        "salesforce_id": a.target.salesforce_id,
    }
