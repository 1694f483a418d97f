"""An address's Salesforce records: which one is the person's primary record, and which
ones an opt-out still has to reach.

An opt-out belongs to the address (docs/sync.md "Records per address"): every Contact,
Lead and Person Account whose email equals it counts. The person keeps one *primary*
record, shown in the UI and used as the link; the linking rule (as Salesloft offers it)
says which object wins. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

LinkRule = Literal["contact_then_lead", "lead_then_contact", "contact_only", "lead_only", "off"]
LINK_RULES: tuple[LinkRule, ...] = (
    "contact_then_lead",
    "lead_then_contact",
    "contact_only",
    "lead_only",
    "off",
)
DEFAULT_LINK_RULE: LinkRule = "contact_then_lead"
RecordObject = Literal["Contact", "Lead", "Account"]
RECORD_OBJECTS: tuple[RecordObject, ...] = ("Contact", "Lead", "Account")

# Which objects a rule links to, best first. A Person Account is a person's Contact in
# Salesforce (its hidden PersonContact), so it ranks with the Contacts, after them.
_PREFERENCE: dict[LinkRule, tuple[RecordObject, ...]] = {
    "contact_then_lead": ("Contact", "Account", "Lead"),
    "lead_then_contact": ("Lead", "Contact", "Account"),
    "contact_only": ("Contact", "Account"),
    "lead_only": ("Lead",),
    "off": (),
}


@dataclass(frozen=True)
class RecordView:
    """One mirrored record as the rules see it. ``opted_out`` is the synced field's value
    (None when not read yet)."""

    record_id: str
    object: RecordObject
    email: str | None
    opted_out: bool | None = None
    converted: bool = False
    deleted: bool = False
    system_modstamp: datetime | None = None

    @property
    def settable(self) -> bool:
        """Whether Salesforce accepts an update of it: not deleted, not a converted Lead."""
        return not self.deleted and not self.converted


def linked_objects(rule: LinkRule) -> tuple[RecordObject, ...]:
    """The objects a rule links persons to, best first (none for ``off``)."""
    return _PREFERENCE[rule]


def parse_link_rule(value: str) -> LinkRule:
    """``value`` as a linking rule, or ValueError naming the choices."""
    for rule in LINK_RULES:
        if value == rule:
            return rule
    raise ValueError(f"link_rule must be one of {', '.join(LINK_RULES)} (got {value!r})")


def primary_record(
    records: Iterable[RecordView], rule: LinkRule, current: str | None = None
) -> RecordView | None:
    """The record a person with these records should be linked to, or None.

    Only records that can be set count. The rule's best object wins; among records of
    that object the current primary stays (links do not flap between duplicates), else
    the most recently modified one (as HubSpot picks among duplicates), then the lowest
    id, so the choice is deterministic."""
    order = _PREFERENCE[rule]
    candidates = [r for r in records if r.settable and r.object in order]
    if not candidates:
        return None
    best = min(order.index(r.object) for r in candidates)
    tier = [r for r in candidates if order.index(r.object) == best]
    for r in tier:
        if r.record_id == current:
            return r
    oldest = datetime.min
    newest = max(
        tier,
        key=lambda r: (
            (r.system_modstamp.replace(tzinfo=None) if r.system_modstamp else oldest),
            _reverse(r.record_id),
        ),
    )
    return newest


def _reverse(record_id: str) -> tuple[int, ...]:
    # max() with a reversed key picks the lowest id among equal stamps
    return tuple(-ord(c) for c in record_id)


def records_to_set(records: Sequence[RecordView]) -> list[RecordView]:
    """The records an opt-out of their address still has to reach: settable and not
    known to carry the field already. A record that lost the address is not here (its
    email differs), and nothing is ever cleared."""
    return [r for r in records if r.settable and r.opted_out is not True]
