"""The sync planner: what the nightly bidirectional sync must change on each side.

Given the local persons and the Salesforce ids whose selected opt-out field is set, the
planner returns a :class:`SyncPlan`. It is the *specification* of a sync run, not its
production path: a run (:mod:`optsync.services.sync`) never loads both sets into Python
but computes the same lists in SQL over a staging table (:mod:`optsync.store.sync_runs`),
pulling in chunks and pushing directly to Salesforce (not through the outbox). A property
test (``tests/integration/sync/test_sql_diff.py``) proves those queries return exactly
the planner's lists, and the rules below are proved by property tests over
:func:`apply_plan`.

Rules
-----
1. **The opted-out state is the union of both sides.** A Salesforce record is opted out
   if its field is set remotely *or* any person linked to it is unsubscribed locally.
   After the plan is applied, every linked person whose record is opted out is
   unsubscribed here, and every such record that optsync knows has the field set.
2. **Nothing in a plan ever clears an opt-out.** Re-subscribes are not synced in either
   direction: a person re-subscribed here whose record still has the field set is
   opted out again (and listed in ``reopted_out`` so the report and UI can say why);
   a field cleared in Salesforce is set again if the person is still unsubscribed here.
3. **Only linked persons are synced.** Unsubscribed persons without a Salesforce id stay
   suppressed locally and are listed in ``not_linked`` for an admin to fix. Remote
   opted-out ids that match no local person are ignored and only counted
   (``unknown_remote``): optsync does not create persons from Salesforce in a sync.
4. **Ids are compared case-insensitively on their 18-character form**, which is what
   the checksum suffix exists for; a lower-cased id from a spreadsheet still matches.
5. **A plan is deterministic**: same inputs (in any order) give an equal plan, with every
   list sorted. Runs are therefore comparable and a second run right after the first
   plans nothing (idempotence).

Records shared by several persons (two addresses linked to one Contact) follow rule 1 at
the record level (the store cannot hold them: ``persons.salesforce_id`` is unique after
``to_18`` repair, so in production this rule never applies; it is kept so the
specification is total): one push per record (carried by the lowest person id), and every
person linked to an opted-out record is unsubscribed, even when it was a sibling rather
than Salesforce that opted the record out, because otherwise the next run would do it
and the first run would not be a fixed point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

ID_LENGTH = 18


@dataclass(frozen=True)
class LocalPerson:
    """A person as the planner sees it. ``salesforce_id`` is the 18-character form."""

    person_id: int
    salesforce_id: str | None
    unsubscribed: bool
    resubscribed_since_last_sync: bool = False


@dataclass(frozen=True, order=True)
class PushAction:
    """Set the opt-out field on this record (on behalf of this person)."""

    person_id: int
    salesforce_id: str


@dataclass(frozen=True, order=True)
class LocalUnsubscribe:
    """Unsubscribe this person locally (source ``salesforce``)."""

    person_id: int
    salesforce_id: str


@dataclass(frozen=True)
class SyncPlan:
    """Everything one sync run must do, and what it must report."""

    push: tuple[PushAction, ...] = ()
    unsubscribe_locally: tuple[LocalUnsubscribe, ...] = ()
    not_linked: tuple[int, ...] = ()
    reopted_out: tuple[int, ...] = ()
    unknown_remote: int = 0

    @property
    def is_noop(self) -> bool:
        """True when the run changes nothing on either side."""
        return not self.push and not self.unsubscribe_locally


def id_key(salesforce_id: str) -> str:
    """The comparison key of an 18-character id (case-insensitive by design)."""
    return salesforce_id.upper()


def _checked_key(salesforce_id: str, what: str) -> str:
    well_formed = salesforce_id.isascii() and salesforce_id.isalnum()
    if len(salesforce_id) != ID_LENGTH or not well_formed:
        raise ValueError(
            f"{what} has Salesforce id {salesforce_id!r}; the planner needs the "
            f"{ID_LENGTH}-character form (convert with optsync.domain.ids.to_18)"
        )
    return id_key(salesforce_id)


def plan_sync(local: Iterable[LocalPerson], remote_opted_out: Iterable[str]) -> SyncPlan:
    """Plan one bidirectional sync run. Pure; see the module docstring for the rules.

    Raises ``ValueError`` for a duplicate person id or an id not in 18-character form,
    because a plan built on ambiguous input could unsubscribe the wrong person.
    """
    persons = sorted(local, key=lambda p: p.person_id)
    seen: set[int] = set()
    for p in persons:
        if p.person_id in seen:
            raise ValueError(f"person {p.person_id} appears twice in the planner input")
        seen.add(p.person_id)

    remote_keys = {_checked_key(r, "a remote opted-out record") for r in remote_opted_out}

    linked: list[tuple[str, str, LocalPerson]] = []
    not_linked: list[int] = []
    for p in persons:
        if p.salesforce_id is None:
            if p.unsubscribed:
                not_linked.append(p.person_id)
            continue
        key = _checked_key(p.salesforce_id, f"person {p.person_id}")
        linked.append((key, p.salesforce_id, p))

    known_keys = {key for key, _, _ in linked}
    locally_opted_out = {key for key, _, p in linked if p.unsubscribed}
    opted_out = locally_opted_out | (remote_keys & known_keys)

    push: list[PushAction] = []
    pushed_keys: set[str] = set()
    unsubscribe: list[LocalUnsubscribe] = []
    reopted: list[int] = []
    for key, sf_id, p in linked:  # ascending person_id: the first pusher is the lowest id
        if p.unsubscribed:
            if key not in remote_keys and key not in pushed_keys:
                push.append(PushAction(p.person_id, sf_id))
                pushed_keys.add(key)
        elif key in opted_out:
            unsubscribe.append(LocalUnsubscribe(p.person_id, sf_id))
            if p.resubscribed_since_last_sync:
                reopted.append(p.person_id)

    return SyncPlan(
        push=tuple(sorted(push)),
        unsubscribe_locally=tuple(sorted(unsubscribe)),
        not_linked=tuple(not_linked),
        reopted_out=tuple(reopted),
        unknown_remote=len(remote_keys - known_keys),
    )


def apply_plan(
    local: Iterable[LocalPerson], remote: Iterable[str], plan: SyncPlan
) -> tuple[tuple[LocalPerson, ...], frozenset[str]]:
    """The state of both sides after ``plan`` is carried out completely.

    A model of the sync service for property tests and dry-run previews, not the
    service itself. It only ever sets opt-outs (rule 2). The re-subscribed flag is
    cleared for everyone, because the applied run becomes "the last sync". Remote ids
    are kept as given; pushed ids are added unless already present in another case.
    """
    to_unsubscribe = {u.person_id for u in plan.unsubscribe_locally}
    new_local = tuple(
        replace(
            p,
            unsubscribed=p.unsubscribed or p.person_id in to_unsubscribe,
            resubscribed_since_last_sync=False,
        )
        for p in local
    )
    new_remote = set(remote)
    present = {id_key(r) for r in new_remote}
    for action in plan.push:
        key = id_key(action.salesforce_id)
        if key not in present:
            new_remote.add(action.salesforce_id)
            present.add(key)
    return new_local, frozenset(new_remote)
