"""What a pull does with the Salesforce records it read: opt-outs follow the address.

Every reader between nightly runs (the Change Data Capture stream, a gap re-read, the
poller, a catch-up) hands the records it read to :func:`absorb`, in the transaction that
also stores its progress. In that one transaction:

1. the records go into the mirror (``store.records.upsert_records``: newest read wins);
2. **pull by address**: a record read with the synced field set opts out its address,
   whatever record the person is linked to (and the person linked to it, as before),
   through the one write path (``store.optouts.unsubscribe(..., push=False)``), source
   ``salesforce``, the record named in the ledger evidence. A re-subscribe recorded here
   after the Salesforce commit wins (issue 12). An address optsync has never seen becomes
   a suppressed person when ``sync_settings.suppress_unknown`` is on (the default);
3. **auto-link**: persons of these addresses without a record are linked to the
   address's primary record by the linking rule (``domain.records.primary_record``);
4. **records that gain the address later** (an email changed onto an unsubscribed
   address, a new Lead, a Lead converted into a new Contact): a record read without the
   field whose address is unsubscribed here re-opens the person's push
   (``store.optouts.requeue``, the one mechanism), which sets every record of the
   address; so does an address just opted out whose other records the mirror does not
   know as set. A record that lost the address keeps its field: nothing is ever cleared.

The nightly run does the same set-based, in SQL (``store.sync_runs``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from optsync.domain import optout
from optsync.domain.records import (
    DEFAULT_LINK_RULE,
    LinkRule,
    parse_link_rule,
    records_to_set,
)
from optsync.store import optouts as optout_store
from optsync.store import persons as persons_store
from optsync.store.models import Person, SalesforceRecord, SyncSettings
from optsync.store.records import (
    MirroredRecord,
    field_column,
    records_by_email,
    upsert_records,
)


@dataclass(frozen=True)
class Policy:
    """The settings a pull by address follows."""

    field: str
    """The synced field's API name."""
    link_rule: LinkRule = DEFAULT_LINK_RULE
    suppress_unknown: bool = True


def policy(session: Session, field: str) -> Policy:
    """The linking rule and the suppress-unknown switch as stored (defaults without a
    settings row)."""
    row = session.get(SyncSettings, 1)
    if row is None:
        return Policy(field)
    return Policy(field, parse_link_rule(row.link_rule), bool(row.suppress_unknown))


@dataclass(frozen=True)
class OptedOut:
    """A record read with the field set, and the commit that shows it (ledger evidence)."""

    record_id: str
    commit_at: datetime
    evidence: dict[str, Any]


@dataclass
class Absorbed:
    opted_out: int = 0
    """Persons unsubscribed (new suppressed persons included)."""
    suppressed: int = 0
    """Addresses optsync had never seen, added as suppressed persons."""
    linked: int = 0
    requeued: int = 0


def absorb(
    session: Session,
    records: Sequence[MirroredRecord],
    hits: Sequence[OptedOut],
    now: datetime,
    *,
    policy: Policy,
    actor: str,
) -> Absorbed:
    """Mirror ``records`` and act on them by address (see the module docstring), in the
    caller's transaction. ``hits``: the records among them (or linked to a person) read
    with the field set."""
    out = Absorbed()
    optout_store.begin_write(session)
    if records:
        upsert_records(session, records, now)
    column = field_column(policy.field)
    ids = sorted({r.record_id for r in records} | {h.record_id for h in hits})
    mirrored: dict[str, SalesforceRecord] = {}
    for start in range(0, len(ids), 500):
        for row in session.scalars(
            select(SalesforceRecord).where(SalesforceRecord.record_id.in_(ids[start : start + 500]))
        ):
            mirrored[row.record_id] = row
    emails = sorted({row.email for row in mirrored.values() if row.email})
    by_email: dict[str, int] = {}
    by_record: dict[str, int] = {}
    for start in range(0, max(len(emails), len(ids)), 500):
        e_chunk, i_chunk = emails[start : start + 500], ids[start : start + 500]
        for pid, email, sf in session.execute(
            select(Person.id, Person.email, Person.salesforce_id).where(
                or_(Person.email.in_(e_chunk), Person.salesforce_id.in_(i_chunk))
            )
        ):
            if email in emails:
                by_email[str(email)] = int(pid)
            if sf is not None:
                by_record[str(sf)] = int(pid)

    # 2. pull by address (and by link), unknown addresses added when the setting says so
    unknown: set[str] = set()
    for hit in hits:
        seen = mirrored.get(hit.record_id)
        address = seen.email if seen is not None else None
        if address and address not in by_email and hit.record_id not in by_record:
            unknown.add(address)
    if unknown and policy.suppress_unknown:
        added = persons_store.add_unknown(session, unknown, now)
        out.suppressed = len(added)
        by_email.update(added)
    by_commit: dict[datetime, dict[int, optout_store.Change]] = defaultdict(dict)
    for hit in hits:
        seen = mirrored.get(hit.record_id)
        targets: set[int | None] = {by_record.get(hit.record_id)}
        if seen is not None and seen.email:
            targets.add(by_email.get(seen.email))
        for target in targets:
            if target is None:
                continue
            event = optout.unsubscribe(
                optout.OptOutState(),
                source=optout.Source.SALESFORCE,
                actor=actor,
                now=now,
                reason=f"Salesforce has {policy.field} set",
                evidence={**hit.evidence, "record_id": hit.record_id, "field": policy.field},
            ).event
            assert event is not None
            by_commit[hit.commit_at].setdefault(target, optout_store.Change(target, event))
    pulled: list[optout_store.Changed] = []
    for commit_at, changes in by_commit.items():
        guard = or_(Person.resubscribed_at.is_(None), Person.resubscribed_at < commit_at)
        pulled += optout_store.unsubscribe(
            session, list(changes.values()), now, push=False, guard=guard
        )
    out.opted_out = len(pulled)

    # 3. persons of these addresses without a record get one
    if by_email:
        out.linked = len(
            persons_store.auto_link(session, by_email.values(), policy.link_rule, policy.field, now)
        )

    # 4. records read without the field, of an address unsubscribed here: push again;
    # and an address just opted out pushes to its other records the mirror has unset
    unset = {
        row.email
        for row in mirrored.values()
        if row.email and not row.deleted and not row.converted and getattr(row, column) is not True
    }
    candidates = [by_email[e] for e in unset if e in by_email]
    if pulled:
        others = records_by_email(session, [c.email for c in pulled], column)
        candidates += [c.person_id for c in pulled if records_to_set(others.get(c.email, []))]
    if candidates:
        unsubscribed = list(
            session.scalars(
                select(Person.id).where(Person.id.in_(candidates), Person.unsubscribed.is_(True))
            )
        )
        if unsubscribed:
            out.requeued = optout_store.requeue(session, unsubscribed, now, any_record=True)
    return out
