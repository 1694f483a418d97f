"""Following converted Leads and merged records: the one engine the pusher and the sync share.

A write to a Lead that was converted fails with ``CANNOT_UPDATE_CONVERTED_LEAD``, and a
write to a record merged away with ``ENTITY_IS_DELETED``; the domain failure table
classifies both as ``FOLLOW_*``. :func:`follow` takes those failed attempts, looks up
where each record went — ``ConvertedContactId`` of the Leads, ``MasterRecordId`` of the
deleted records per object (queryAll) — in one batched lookup per kind and object, and
returns the retargeted attempts (to send again, and to relink the person to when they
succeed) and the final failures:

* no new record (deleted rather than merged, converted without a Contact): the
  failure becomes permanent (:func:`optsync.domain.failures.unfollowable`), with the fix;
* the lookup call itself failed: the call's own classification and message, so the
  caller treats it like any failed call (the pusher's retry policy, the sync's list);
* followed :data:`MAX_FOLLOWS` times already (a Lead converted into a Contact that was
  then merged is two): the chain kept moving, a permanent failure.

The engine never writes to the database and never sends the opt-out itself: the pusher
sends one composite call per round, the sync chooses REST or Bulk by volume. Both loop
until no attempt is left, which terminates because every resend has one more follow
(bounded here) or one more retry (bounded by the caller).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, Self, TypeVar

from optsync.domain.failures import Classification, Outcome, unfollowable
from optsync.domain.ids import to_18
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import Target

T = TypeVar("T")

MAX_FOLLOWS = 2
"""Follows per attempt: a conversion, then a merge of the Contact it became."""

FOLLOW_OUTCOMES = (Outcome.FOLLOW_CONVERSION, Outcome.FOLLOW_MERGE)


class FollowGateway(Protocol):
    """What following needs of ``optsync.salesforce.gateway.SalesforceGateway``."""

    def converted_contacts(self, lead_ids: Sequence[str]) -> dict[str, str | None]: ...

    def merged_masters(self, ids: Sequence[str], object: str) -> dict[str, str | None]: ...


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """One record to set on behalf of ``owner`` (the pusher's claimed push, the sync's
    person id). ``followed_from`` is the original record once retargeted."""

    owner: T
    target: Target
    followed_from: str | None = None
    follows: int = 0
    retries: int = 0

    def retried(self) -> Self:
        return replace(self, retries=self.retries + 1)


A = TypeVar("A", bound=Attempt[Any])


@dataclass(frozen=True)
class Failed(Generic[A]):
    """An attempt that failed, with its classification and Salesforce's message."""

    attempt: A
    classification: Classification
    message: str


@dataclass
class Followed(Generic[A]):
    """What :func:`follow` found: attempts to send again, and final failures."""

    retargets: list[A] = field(default_factory=list)
    failures: list[Failed[A]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    """``conversion`` / ``merge`` -> retargets of that kind (for the metrics)."""


def needs_following(classification: Classification) -> bool:
    return classification.outcome in FOLLOW_OUTCOMES


def follow(gateway: FollowGateway, failed: Sequence[Failed[A]]) -> Followed[A]:
    """Follow every ``FOLLOW_*`` failure in ``failed`` (others are returned as failures
    unchanged); see the module docstring."""
    out: Followed[A] = Followed()
    groups: dict[tuple[str, str], list[Failed[A]]] = {}
    for f in failed:
        if not needs_following(f.classification):
            out.failures.append(f)
        elif f.attempt.follows >= MAX_FOLLOWS:
            out.failures.append(
                Failed(
                    f.attempt,
                    unfollowable(f.classification),
                    f"{f.message} (followed {MAX_FOLLOWS} times; the record chain kept moving)",
                )
            )
        elif f.classification.outcome is Outcome.FOLLOW_CONVERSION:
            groups.setdefault(("conversion", "Contact"), []).append(f)
        else:
            groups.setdefault(("merge", f.attempt.target.object), []).append(f)
    for (kind, new_object), items in groups.items():
        ids = list(dict.fromkeys(f.attempt.target.salesforce_id for f in items))
        try:
            if kind == "conversion":
                found = gateway.converted_contacts(ids)
            else:
                found = gateway.merged_masters(ids, object=new_object)
        except SalesforceCallError as exc:
            out.failures += [Failed(f.attempt, exc.classification, str(exc)) for f in items]
            continue
        for f in items:
            new_id = found.get(f.attempt.target.salesforce_id)
            if not new_id:
                out.failures.append(Failed(f.attempt, unfollowable(f.classification), f.message))
                continue
            a = f.attempt
            out.kinds[kind] += 1
            out.retargets.append(
                replace(
                    a,
                    target=Target(to_18(new_id), new_object),
                    followed_from=a.followed_from or a.target.salesforce_id,
                    follows=a.follows + 1,
                )
            )
    return out
