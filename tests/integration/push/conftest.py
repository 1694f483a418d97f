"""Fixtures for push tests: persons linked to emulator records, and a pusher."""

from __future__ import annotations

import random
from typing import Any

import pytest

from optsync.domain.ids import parse_person_id
from optsync.domain.optout import Source
from optsync.domain.retry import RetryPolicy
from optsync.services import optouts
from optsync.services.persons import PersonInput, upsert_person
from optsync.services.push import Pusher


def link_and_unsubscribe(db, clock, ids: list[str], *, unsubscribe: bool = True) -> list[int]:
    """One person per Salesforce id (email p-<id>@example.com); returns person ids."""
    person_ids = []
    with db.transaction() as s:
        for n, sf_id in enumerate(ids):
            id18, kind = parse_person_id(sf_id)
            person, _ = upsert_person(
                s, PersonInput(n, f"p-{id18.lower()}@example.com", id18, kind.value), clock()
            )
            if unsubscribe:
                optouts.unsubscribe_person(s, person, source=Source.API, actor="test", now=clock())
            person_ids.append(person.id)
    return person_ids


def record(emu, sf_id: str) -> dict[str, Any]:
    return dict(emu.control("GET", f"records/{sf_id}"))


@pytest.fixture
def gateway(sf_gateway):
    return sf_gateway


@pytest.fixture
def pusher(db, clock, gateway):
    # tiny backoff so retries come due after a short clock advance
    policy = RetryPolicy(base_s=0.5, factor=2.0, cap_s=5.0, daily_limit_pause_s=600)
    return Pusher(
        db,
        lambda: gateway,
        worker="test-worker",
        clock=clock,
        policy=policy,
        rng=random.Random(7).random,
    )
