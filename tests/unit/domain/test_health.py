"""The pure health decisions: what is failing, and which notifications to make, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optsync.domain.health import (
    HealthFacts,
    RunFact,
    StuckSpell,
    delivery_delay,
    plan_notifications,
    problems,
    webhook_signature,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ON = NOW - timedelta(hours=2)


def facts(**kw):
    base = dict(
        now=NOW, sync_enabled=True, last_success=None, last_run=None, running=None,
        waiting=0, oldest_waiting_at=None, failed_pushes=0, stuck=0, stuck_after_min=15,
        live_pull="live",
    )  # fmt: skip
    return HealthFacts(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "kinds"),
    [
        ({}, []),
        ({"last_run": RunFact(3, "failed", NOW, "boom")}, ["failed_run"]),
        ({"last_run": RunFact(3, "succeeded", NOW)}, []),
        ({"failed_pushes": 2}, ["failed_pushes"]),
        ({"stuck": 1}, ["stuck_pushes"]),
        ({"live_pull": "waiting"}, ["live_pull"]),
        ({"live_pull": "waiting", "sync_enabled": False}, []),
        (
            {"last_run": RunFact(3, "failed", NOW), "failed_pushes": 1, "stuck": 1},
            ["failed_run", "failed_pushes", "stuck_pushes"],
        ),
    ],
)
def test_problems(kw, kinds):
    assert [p.kind for p in problems(facts(**kw))] == kinds


def test_problem_words_count_correctly():
    [one] = problems(facts(failed_pushes=1))
    [many] = problems(facts(failed_pushes=1234))
    assert one.text == "1 push failed and needs a fix"
    assert many.text == "1,234 pushes failed and need a fix"


def plan(**kw):
    base = dict(
        now=NOW, enabled_at=ON, failed_runs=[], known_keys=set(), stuck=StuckSpell(0),
        stuck_after_min=15, open_spell=None, notify_resolved=True,
    )  # fmt: skip
    return plan_notifications(**{**base, **kw})


FAILED = RunFact(7, "failed", NOW - timedelta(minutes=1), "boom")


@pytest.mark.parametrize(
    ("kw", "keys", "resolve"),
    [
        ({}, [], None),
        ({"enabled_at": None, "failed_runs": [FAILED]}, [], None),  # off
        ({"failed_runs": [FAILED]}, ["run_failed:7"], None),
        ({"failed_runs": [FAILED], "known_keys": {"run_failed:7"}}, [], None),  # once
        ({"failed_runs": [FAILED], "enabled_at": NOW}, [], None),  # before switching on
        (
            {
                "failed_runs": [RunFact(1, "failed", NOW - timedelta(hours=25))],
                "enabled_at": ON - timedelta(days=3),
            },
            [],
            None,
        ),  # older than a day
        ({"stuck": StuckSpell(3, 41, NOW - timedelta(minutes=20))}, ["pushes_stuck:41"], None),
        ({"stuck": StuckSpell(3, 41, NOW), "open_spell": "pushes_stuck:41"}, [], None),
        ({"open_spell": "pushes_stuck:41"}, ["pushes_stuck:41:resolved"], "pushes_stuck:41"),
        ({"open_spell": "pushes_stuck:41", "notify_resolved": False}, [], "pushes_stuck:41"),
    ],
)
def test_plan_notifications(kw, keys, resolve):
    result = plan(**kw)
    assert [e.key for e in result.new] == keys
    assert result.resolve == resolve


def test_delivery_backoff_grows_and_is_capped():
    assert [delivery_delay(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert delivery_delay(20) == timedelta(hours=1)


def test_webhook_signature_is_hmac_sha256_of_timestamp_dot_body():
    # reference value computed independently: hmac.new(b"k", b"1.{}", sha256)
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
    assert webhook_signature("k", "1", b"{}") == "sha256=" + expected
    assert webhook_signature("k", "2", b"{}") != "sha256=" + expected
