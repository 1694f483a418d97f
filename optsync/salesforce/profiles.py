"""Named call profiles: how long a Salesforce call may take and how often it is retried,
fixed per use instead of at each call site.

* ``page`` — a web request (or an admin at the CLI) waits on the answer: short timeouts,
  one token attempt, no retries; a failure becomes a sentence on the page.
* ``job`` — long jobs (a sync run, ``persons pull``, the demo): the default timeouts and
  a few retries with backoff, so a short Salesforce blip does not fail the whole job.
* ``push`` — the push worker: the default timeouts and no retries here, because its
  outbox retries each record on its own schedule (:mod:`optsync.domain.retry`).

The profile's name is also the ``purpose`` label of
``optsync_salesforce_api_calls_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from optsync.salesforce.http import DEFAULT_TIMEOUT, Timeout


class Profile(StrEnum):
    PAGE = "page"
    JOB = "job"
    PUSH = "push"


@dataclass(frozen=True)
class ProfileSpec:
    timeout: Timeout
    """``(connect, read)`` seconds for every request, token requests included."""
    retries: int
    """Transient-failure retries per API call, with backoff (0: the caller retries)."""
    token_attempts: int
    """Attempts at the token endpoint before it is reported unavailable."""


LONG_JOB_RETRIES = 4
"""Transient-failure retries per call for long jobs (sync runs, pulls): with backoff of
0.5-8 s they ride out a short Salesforce blip instead of failing the whole job."""

PAGE_TIMEOUT: Timeout = (5.0, 20.0)

PROFILES: dict[Profile, ProfileSpec] = {
    Profile.PAGE: ProfileSpec(timeout=PAGE_TIMEOUT, retries=0, token_attempts=1),
    Profile.JOB: ProfileSpec(timeout=DEFAULT_TIMEOUT, retries=LONG_JOB_RETRIES, token_attempts=3),
    Profile.PUSH: ProfileSpec(timeout=DEFAULT_TIMEOUT, retries=0, token_attempts=3),
}
