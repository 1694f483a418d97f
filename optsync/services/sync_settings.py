"""The unsubscribe-sync settings: read with defaults, change with validation."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from optsync.domain.records import DEFAULT_LINK_RULE, LINK_RULES, parse_link_rule
from optsync.domain.schedule import ScheduleError, validate_cron, validate_timezone
from optsync.errors import UsageError
from optsync.store.models import SyncSettings

FIELD_CHOICES = {"email_opt_out": "HasOptedOutOfEmail", "sales_opt_out": None}
LIVE_PULL_CHOICES = ("auto", "cdc", "poll", "off")
POLL_INTERVAL_MIN, POLL_INTERVAL_MAX = 15, 3600
CUSTOM_FIELD_RE = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c")  # fullmatch only


@dataclass(frozen=True)
class SyncSettingsView:
    sync_enabled: bool
    field: str
    sales_opt_out_field: str
    schedule: str
    timezone: str
    live_pull: str = "auto"
    """How Salesforce-side opt-outs arrive between nightly runs: ``auto`` (Change Data
    Capture where available, polling otherwise), ``cdc``, ``poll`` or ``off``; only while
    the sync is on (docs/sync.md "Live pull")."""
    poll_interval_s: int = 60
    """Seconds between two polls when polling (15-3600)."""
    link_rule: str = DEFAULT_LINK_RULE
    """Which of an address's Salesforce records becomes the person's primary (linked)
    record: ``contact_then_lead``, ``lead_then_contact``, ``contact_only``, ``lead_only`` or
    ``off`` (never link automatically); every record counts for the opt-out whatever the
    rule (docs/sync.md "Records per address")."""
    suppress_unknown: bool = True
    """A Salesforce opt-out of an address optsync has never seen adds a suppressed person."""

    @property
    def salesforce_field(self) -> str:
        """The API name a push writes when sync is on."""
        return "HasOptedOutOfEmail" if self.field == "email_opt_out" else self.sales_opt_out_field

    def push_field(self) -> str:
        """Sync off: pushes always write Email Opt Out; on: the selected field."""
        return self.salesforce_field if self.sync_enabled else "HasOptedOutOfEmail"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULTS = SyncSettingsView(
    sync_enabled=False,
    field="email_opt_out",
    sales_opt_out_field="Sales_Opt_Out__c",
    schedule="0 20 * * *",
    timezone="America/Los_Angeles",
)


def get_settings(session: Session) -> SyncSettingsView:
    row = session.get(SyncSettings, 1)
    if row is None:
        return DEFAULTS
    return SyncSettingsView(
        row.sync_enabled,
        row.field,
        row.sales_opt_out_field,
        row.schedule,
        row.timezone,
        row.live_pull,
        row.poll_interval_s,
        row.link_rule,
        row.suppress_unknown,
    )


def validate_changes(current: SyncSettingsView, changes: dict[str, Any]) -> SyncSettingsView:
    """Check every given value; the error names the setting and the fix."""
    values = current.as_dict()
    unknown = set(changes) - set(values)
    if unknown:
        raise UsageError(f"{sorted(unknown)[0]}: unknown setting.", field=sorted(unknown)[0])
    for key, value in changes.items():
        if value is None:
            continue
        if key == "sync_enabled":
            if not isinstance(value, bool):
                raise UsageError("sync_enabled: use true or false.", field="sync_enabled")
        elif key == "field":
            if value not in FIELD_CHOICES:
                raise UsageError(
                    f"field: {value!r} is not a choice; use email_opt_out (Salesforce Email "
                    "Opt Out) or sales_opt_out (a custom Sales Opt Out checkbox).",
                    field="field",
                )
        elif key == "sales_opt_out_field":
            if (
                not isinstance(value, str)
                or len(value) > 80
                or not CUSTOM_FIELD_RE.fullmatch(value)
            ):
                raise UsageError(
                    f"sales_opt_out_field: {value!r} is not a custom field API name; it looks "
                    "like Sales_Opt_Out__c (letters, digits, single underscores, ending __c).",
                    field="sales_opt_out_field",
                )
        elif key == "schedule":
            try:
                value = validate_cron(value)
            except ScheduleError as exc:
                raise UsageError(f"schedule: {exc}", field="schedule") from None
        elif key == "live_pull":
            if value not in LIVE_PULL_CHOICES:
                raise UsageError(
                    f"live_pull: {value!r} is not a choice; use auto (Change Data Capture "
                    "where it is enabled, polling otherwise), cdc, poll or off.",
                    field="live_pull",
                )
        elif key == "poll_interval_s":
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not POLL_INTERVAL_MIN <= value <= POLL_INTERVAL_MAX
            ):
                raise UsageError(
                    f"poll_interval_s: {value!r} is not a whole number of seconds from "
                    f"{POLL_INTERVAL_MIN} to {POLL_INTERVAL_MAX}.",
                    field="poll_interval_s",
                )
        elif key == "link_rule":
            try:
                value = parse_link_rule(value) if isinstance(value, str) else None
            except ValueError:
                value = None
            if value is None:
                raise UsageError(
                    f"link_rule: {changes[key]!r} is not a choice; use "
                    f"{', '.join(LINK_RULES)} (contact_then_lead links a person to a "
                    "Contact, else a Lead; off never links automatically).",
                    field="link_rule",
                )
        elif key == "suppress_unknown":
            if not isinstance(value, bool):
                raise UsageError("suppress_unknown: use true or false.", field="suppress_unknown")
        elif key == "timezone":
            try:
                value = validate_timezone(value)
            except ScheduleError as exc:
                raise UsageError(f"timezone: {exc}", field="timezone") from None
        values[key] = value
    return SyncSettingsView(**values)


def update_settings(
    session: Session, changes: dict[str, Any], *, actor: str, now: datetime
) -> SyncSettingsView:
    """Apply validated ``changes``. Switching the sync from off to on sets ``enabled_at``
    (the schedule's start, see :mod:`optsync.worker.scheduler`); other edits keep it. A
    change of the synced field marks the record mirror untrusted (the next nightly run
    re-reads every record)."""
    old = get_settings(session)
    new = validate_changes(old, changes)
    if new.salesforce_field != old.salesforce_field:
        # the mirror's values of the new field were not kept up to date: read it again
        from optsync.store.records import save_mirror_state

        save_mirror_state(
            session,
            now,
            trusted=False,
            reason=f"the synced field changed to {new.salesforce_field}",
        )
    row = session.get(SyncSettings, 1, with_for_update=True)
    if row is None:
        row = SyncSettings(id=1, sync_enabled=False)
        session.add(row)
    if new.sync_enabled and not row.sync_enabled:
        row.enabled_at = now
    for key, value in new.as_dict().items():
        setattr(row, key, value)
    row.updated_at = now
    row.updated_by = actor
    session.flush()
    return new
