"""The retry policy: given a classified failure, when (and whether) to try again.

A pure decision, in the manner of procrastinate's ``retry.py``: the worker passes in the
failure, how many attempts were made, ``now`` and a random source, and gets back a
:class:`RetryDecision` it persists on the outbox row. Keeping the clock and the
randomness injected makes every branch testable with one table.

Rules
-----
* ``RETRY`` (timeouts, 5xx, lock contention, concurrency limit): exponential backoff
  ``base_s * factor ** (attempts - 1)``, capped at ``cap_s``, with **full jitter**: the
  delay is uniform in ``[0, ceiling]``. Full jitter rather than equal jitter because the
  failures we retry are mostly contention (``UNABLE_TO_LOCK_ROW`` when our own batches
  and Salesforce automation touch the same Account, many workers after an outage), and
  full jitter spreads competing clients the most and needs the fewest calls to get
  through (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015); every call
  counts against the org's daily allocation, so fewer calls matter more here than a
  guaranteed minimum wait. :attr:`Jitter.EQUAL` (``ceiling/2 + uniform[0, ceiling/2]``)
  is available for callers that want that minimum. A server's ``Retry-After`` is
  honoured as a floor.
* ``RENEW_SESSION``: renew the token and retry at once; if the session keeps failing
  right after renewals, keep renewing but back off like ``RETRY``, so a broken connected
  app cannot spin.
* ``PAUSE_DAILY_LIMIT``: the allocation is a rolling 24 hours, so requests come back
  gradually; pause for ``daily_limit_pause_s`` (default one hour) and try again. A pause
  never counts towards ``max_attempts``: running out of org allocation is not the
  record's fault, and a push must never be lost to it.
* ``PERMANENT``: give up at once. ``FOLLOW_*`` outcomes are resolved by the caller
  (retarget the push) before asking; the *same* request can never succeed, so asking
  anyway yields ``GIVE_UP``.
* ``max_attempts`` (``None`` = unlimited, the default, because a push must only ever be
  delayed, never lost) bounds ``RETRY`` and ``RENEW_SESSION``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from optsync.domain.failures import Classification, Outcome


class Jitter(StrEnum):
    FULL = "full"
    """Uniform in ``[0, ceiling]``: best spread, fewest calls under contention."""
    EQUAL = "equal"
    """Uniform in ``[ceiling/2, ceiling]``: keeps a minimum wait."""


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently to retry. Immutable, so one instance can be shared by all workers."""

    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 300.0
    max_attempts: int | None = None
    jitter: Jitter = Jitter.FULL
    daily_limit_pause_s: float = 3600.0
    immediate_renewals: int = 2
    """Session renewals retried at once before renewals also back off."""

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s <= 0 or self.daily_limit_pause_s <= 0:
            raise ValueError("base_s, cap_s and daily_limit_pause_s must be positive")
        if self.factor < 1:
            raise ValueError("factor must be at least 1, or the backoff would shrink")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for unlimited)")
        if self.immediate_renewals < 0:
            raise ValueError("immediate_renewals cannot be negative")


class DecisionKind(StrEnum):
    RETRY_AT = "retry_at"
    RENEW_AND_RETRY_NOW = "renew_and_retry_now"
    PAUSE_UNTIL = "pause_until"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a failed request.

    ``at`` is set for ``RETRY_AT`` and ``PAUSE_UNTIL``. ``renew_session`` asks the
    caller to mint a new token before the next attempt (always true for
    ``RENEW_AND_RETRY_NOW``; true for ``RETRY_AT`` once immediate renewals are used up).
    """

    kind: DecisionKind
    at: datetime | None = None
    renew_session: bool = False

    @classmethod
    def retry_at(cls, at: datetime, *, renew_session: bool = False) -> RetryDecision:
        return cls(DecisionKind.RETRY_AT, at, renew_session)

    @classmethod
    def renew_and_retry_now(cls) -> RetryDecision:
        return cls(DecisionKind.RENEW_AND_RETRY_NOW, None, True)

    @classmethod
    def pause_until(cls, at: datetime) -> RetryDecision:
        return cls(DecisionKind.PAUSE_UNTIL, at)

    @classmethod
    def give_up(cls) -> RetryDecision:
        return cls(DecisionKind.GIVE_UP)


def backoff_ceiling(policy: RetryPolicy, attempts: int) -> float:
    """The largest delay (seconds) after ``attempts`` failed attempts, before jitter.

    Non-decreasing in ``attempts`` and never above ``cap_s``; computed without
    overflow for any attempt count.
    """
    if attempts < 1:
        raise ValueError("attempts counts the failed attempts so far and starts at 1")
    exponent = attempts - 1
    if exponent == 0 or policy.factor == 1:
        return min(policy.base_s, policy.cap_s)
    # Compare in log space so a huge attempt count cannot overflow ``factor ** exponent``.
    if exponent * math.log(policy.factor) >= math.log(policy.cap_s / policy.base_s):
        return policy.cap_s
    return min(policy.base_s * policy.factor**exponent, policy.cap_s)


def backoff_delay(policy: RetryPolicy, attempts: int, rng: Callable[[], float]) -> float:
    """One jittered delay in seconds, within ``[0, cap_s]``.

    ``rng`` returns a float in ``[0, 1)`` (``random.Random().random``); values outside
    are clamped so a faulty source cannot produce a negative or oversized delay.
    """
    ceiling = backoff_ceiling(policy, attempts)
    u = min(max(rng(), 0.0), 1.0)
    if policy.jitter is Jitter.EQUAL:
        return ceiling / 2 + u * ceiling / 2
    return u * ceiling


def decide(
    policy: RetryPolicy,
    classification: Classification,
    attempts: int,
    now: datetime,
    rng: Callable[[], float],
    *,
    retry_after_s: float | None = None,
) -> RetryDecision:
    """Decide what to do after the ``attempts``-th failed attempt (1 = the first try).

    ``retry_after_s`` is the server's ``Retry-After`` header, if any: the retry is never
    scheduled earlier than that, even above ``cap_s``, because the server said so.
    """
    if attempts < 1:
        raise ValueError("attempts counts the failed attempts so far and starts at 1")
    outcome = classification.outcome

    if outcome is Outcome.PAUSE_DAILY_LIMIT:
        pause = max(policy.daily_limit_pause_s, retry_after_s or 0.0)
        return RetryDecision.pause_until(now + timedelta(seconds=pause))
    if outcome not in (Outcome.RETRY, Outcome.RENEW_SESSION):
        return RetryDecision.give_up()
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return RetryDecision.give_up()

    if outcome is Outcome.RENEW_SESSION and attempts <= policy.immediate_renewals:
        return RetryDecision.renew_and_retry_now()

    delay = backoff_delay(policy, attempts, rng)
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    return RetryDecision.retry_at(
        now + timedelta(seconds=delay),
        renew_session=outcome is Outcome.RENEW_SESSION,
    )
