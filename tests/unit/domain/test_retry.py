"""The retry policy: one table of decisions, then the backoff bounds as properties."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optsync.domain.failures import Classification, Outcome
from optsync.domain.retry import (
    DecisionKind,
    Jitter,
    RetryDecision,
    RetryPolicy,
    backoff_ceiling,
    backoff_delay,
    decide,
)

NOW = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
DEFAULT = RetryPolicy()
BOUNDED = RetryPolicy(max_attempts=5)
EQUAL = RetryPolicy(jitter=Jitter.EQUAL)


def c(outcome: Outcome) -> Classification:
    return Classification(outcome, "CODE", "fix.")


def s(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


TABLE: list[tuple[str, RetryPolicy, Outcome, int, float, float | None, RetryDecision]] = [
    # name, policy, outcome, attempts, rng value, Retry-After, expected
    ("first retry, full jitter top", DEFAULT, Outcome.RETRY, 1, 1.0, None,
     RetryDecision.retry_at(s(1.0))),
    ("first retry, full jitter middle", DEFAULT, Outcome.RETRY, 1, 0.5, None,
     RetryDecision.retry_at(s(0.5))),
    ("full jitter may retry at once", DEFAULT, Outcome.RETRY, 3, 0.0, None,
     RetryDecision.retry_at(NOW)),
    ("exponential: 4th failure, ceiling 8 s", DEFAULT, Outcome.RETRY, 4, 0.5, None,
     RetryDecision.retry_at(s(4.0))),
    ("capped at 300 s", DEFAULT, Outcome.RETRY, 20, 1.0, None,
     RetryDecision.retry_at(s(300.0))),
    ("huge attempt count stays capped", DEFAULT, Outcome.RETRY, 10_000, 1.0, None,
     RetryDecision.retry_at(s(300.0))),
    ("equal jitter keeps half the ceiling", EQUAL, Outcome.RETRY, 4, 0.0, None,
     RetryDecision.retry_at(s(4.0))),
    ("equal jitter top", EQUAL, Outcome.RETRY, 4, 1.0, None,
     RetryDecision.retry_at(s(8.0))),
    ("Retry-After is a floor", DEFAULT, Outcome.RETRY, 1, 0.5, 30.0,
     RetryDecision.retry_at(s(30.0))),
    ("Retry-After below the jittered delay changes nothing", DEFAULT, Outcome.RETRY, 4,
     0.5, 1.0, RetryDecision.retry_at(s(4.0))),
    ("Retry-After may exceed the cap", DEFAULT, Outcome.RETRY, 20, 1.0, 900.0,
     RetryDecision.retry_at(s(900.0))),
    ("unlimited by default", DEFAULT, Outcome.RETRY, 1_000, 0.25, None,
     RetryDecision.retry_at(s(75.0))),
    ("bounded: below the limit", BOUNDED, Outcome.RETRY, 4, 1.0, None,
     RetryDecision.retry_at(s(8.0))),
    ("bounded: limit reached", BOUNDED, Outcome.RETRY, 5, 1.0, None,
     RetryDecision.give_up()),
    ("session: renew at once", DEFAULT, Outcome.RENEW_SESSION, 1, 0.5, None,
     RetryDecision.renew_and_retry_now()),
    ("session: renew at once again", DEFAULT, Outcome.RENEW_SESSION, 2, 0.5, None,
     RetryDecision.renew_and_retry_now()),
    ("session keeps failing: renew and back off", DEFAULT, Outcome.RENEW_SESSION, 3, 1.0,
     None, RetryDecision.retry_at(s(4.0), renew_session=True)),
    ("session: bounded", BOUNDED, Outcome.RENEW_SESSION, 5, 1.0, None,
     RetryDecision.give_up()),
    ("daily limit: pause one hour", DEFAULT, Outcome.PAUSE_DAILY_LIMIT, 1, 0.5, None,
     RetryDecision.pause_until(s(3600))),
    ("daily limit: configurable", RetryPolicy(daily_limit_pause_s=900),
     Outcome.PAUSE_DAILY_LIMIT, 1, 0.5, None, RetryDecision.pause_until(s(900))),
    ("daily limit never gives up", BOUNDED, Outcome.PAUSE_DAILY_LIMIT, 50, 0.5, None,
     RetryDecision.pause_until(s(3600))),
    ("daily limit honours a longer Retry-After", DEFAULT, Outcome.PAUSE_DAILY_LIMIT, 1,
     0.5, 7200.0, RetryDecision.pause_until(s(7200))),
    ("permanent: give up", DEFAULT, Outcome.PERMANENT, 1, 0.5, None,
     RetryDecision.give_up()),
    ("conversion is followed by the caller, not retried", DEFAULT,
     Outcome.FOLLOW_CONVERSION, 1, 0.5, None, RetryDecision.give_up()),
    ("merge is followed by the caller, not retried", DEFAULT, Outcome.FOLLOW_MERGE, 1,
     0.5, None, RetryDecision.give_up()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "outcome", "attempts", "u", "retry_after", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_decide_table(
    policy: RetryPolicy,
    outcome: Outcome,
    attempts: int,
    u: float,
    retry_after: float | None,
    expected: RetryDecision,
) -> None:
    decision = decide(policy, c(outcome), attempts, NOW, lambda: u, retry_after_s=retry_after)
    assert decision == expected


def test_decision_kinds() -> None:
    assert RetryDecision.renew_and_retry_now().kind is DecisionKind.RENEW_AND_RETRY_NOW
    assert RetryDecision.renew_and_retry_now().renew_session
    assert RetryDecision.give_up() == RetryDecision(DecisionKind.GIVE_UP)
    assert RetryDecision.pause_until(NOW).kind is DecisionKind.PAUSE_UNTIL


def test_out_of_range_random_values_are_clamped() -> None:
    assert backoff_delay(DEFAULT, 4, lambda: -3.0) == 0.0
    assert backoff_delay(DEFAULT, 4, lambda: 7.0) == 8.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": 0},
        {"cap_s": -1},
        {"factor": 0.5},
        {"max_attempts": 0},
        {"daily_limit_pause_s": 0},
        {"immediate_renewals": -1},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        decide(DEFAULT, c(Outcome.RETRY), 0, NOW, random.Random(1).random)


def test_decide_uses_only_the_injected_randomness() -> None:
    first = [
        decide(DEFAULT, c(Outcome.RETRY), n, NOW, random.Random(7).random) for n in range(1, 12)
    ]
    again = [
        decide(DEFAULT, c(Outcome.RETRY), n, NOW, random.Random(7).random) for n in range(1, 12)
    ]
    assert first == again


# -- properties ------------------------------------------------------------------------

policies = st.builds(
    RetryPolicy,
    base_s=st.floats(0.01, 60),
    factor=st.floats(1, 5),
    cap_s=st.floats(0.01, 3600),
    jitter=st.sampled_from(Jitter),
)


@given(policies, st.integers(1, 10_000), st.floats(0, 1))
def test_delay_is_within_zero_and_the_cap(policy: RetryPolicy, attempts: int, u: float) -> None:
    delay = backoff_delay(policy, attempts, lambda: u)
    assert 0 <= delay <= policy.cap_s
    decision = decide(policy, c(Outcome.RETRY), attempts, NOW, lambda: u)
    assert decision.kind is DecisionKind.RETRY_AT
    assert decision.at is not None
    assert NOW <= decision.at <= NOW + timedelta(seconds=policy.cap_s)


@given(policies, st.integers(1, 200), st.floats(0, 1))
def test_delay_is_non_decreasing_in_expectation(
    policy: RetryPolicy, attempts: int, u: float
) -> None:
    # The delay is a fixed non-decreasing function of the random draw scaled by the
    # ceiling, so monotone ceilings give monotone delays draw by draw, and therefore in
    # expectation (E[full] = ceiling / 2, E[equal] = 3 * ceiling / 4).
    assert backoff_ceiling(policy, attempts) <= backoff_ceiling(policy, attempts + 1)
    assert backoff_delay(policy, attempts, lambda: u) <= backoff_delay(
        policy, attempts + 1, lambda: u
    )


def test_sampled_mean_grows_then_plateaus() -> None:
    rng = random.Random(2026)
    means = []
    for attempts in range(1, 12):
        draws = [backoff_delay(DEFAULT, attempts, rng.random) for _ in range(2000)]
        means.append(sum(draws) / len(draws))
    assert means[0] == pytest.approx(0.5, rel=0.1)
    assert means[-1] == pytest.approx(150.0, rel=0.1)
    assert all(b >= a * 0.9 for a, b in itertools.pairwise(means))
