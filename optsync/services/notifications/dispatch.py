"""Deciding and delivering notifications, once per failure, from the worker's scheduler.

Each tick (:func:`notify_tick`):

1. **Decide** (one short transaction): the failed real runs of the last day, the stuck
   pushes and the open stuck spell go to the pure
   :func:`optsync.domain.health.plan_notifications`; its new events are inserted under
   their unique keys (a key another worker inserted first is skipped), an ended spell
   gets ``resolved_at``.
2. **Claim** due events: a conditional UPDATE moves ``next_attempt_at`` a lease ahead and
   counts the attempt, so two workers never send the same event at once.
3. **Send** with no transaction open: each enabled channel not yet delivered.
4. **Record** (a new transaction): ``sent`` when every enabled channel delivered;
   otherwise the error and a retry after a backoff (30 s, 1 min, … 1 h), and ``failed``
   after :data:`~optsync.domain.health.MAX_DELIVERY_ATTEMPTS`.

Nothing is decided while no channel is on, so switching notifications on later does not
replay old failures (``enabled_at`` bounds them too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optsync.domain.health import (
    FAILED_RUN_WINDOW,
    MAX_DELIVERY_ATTEMPTS,
    RunFact,
    StuckSpell,
    delivery_delay,
    message_of,
    plan_notifications,
)
from optsync.services.health import stuck_pushes
from optsync.services.notifications.channels import DeliveryError, send_email, send_webhook
from optsync.services.notifications.settings import (
    NotificationSettingsView,
    get_notification_settings,
    load_secrets,
)
from optsync.store.db import Database
from optsync.store.models import NotificationEvent, SyncRun

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=5)
CLAIM_BATCH = 20
CHANNELS = ("email", "webhook")


@dataclass
class Channels:
    """The senders (tests may swap them); each raises DeliveryError."""

    email: Callable[..., None] = send_email
    webhook: Callable[..., None] = send_webhook


@dataclass
class TickResult:
    created: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _enabled(view: NotificationSettingsView) -> list[str]:
    return [c for c in CHANNELS if getattr(view, f"{c}_enabled")]


def decide(session: Session, view: NotificationSettingsView, now: datetime) -> list[str]:
    """Insert this tick's new events; returns their keys."""
    since = now - FAILED_RUN_WINDOW
    rows = session.execute(
        select(SyncRun.id, SyncRun.error, SyncRun.finished_at).where(
            SyncRun.status == "failed",
            SyncRun.dry_run.is_(False),
            SyncRun.finished_at >= since,
        )
    ).all()
    failed = [RunFact(int(i), "failed", at, err) for i, err, at in rows]
    keys = [f"run_failed:{r.id}" for r in failed]
    known = set(
        session.scalars(select(NotificationEvent.key).where(NotificationEvent.key.in_(keys)))
    )
    count, oldest_id, oldest_at = stuck_pushes(session, now, view.stuck_after_min)
    open_spell = session.scalars(
        select(NotificationEvent.key)
        .where(NotificationEvent.kind == "pushes_stuck", NotificationEvent.resolved_at.is_(None))
        .order_by(NotificationEvent.id.desc())
    ).first()
    plan = plan_notifications(
        now=now,
        enabled_at=view.enabled_at,
        failed_runs=failed,
        known_keys=known,
        stuck=StuckSpell(count, oldest_id, oldest_at),
        stuck_after_min=view.stuck_after_min,
        open_spell=open_spell,
        notify_resolved=view.notify_resolved,
    )
    if plan.resolve:
        session.execute(
            update(NotificationEvent)
            .where(NotificationEvent.key == plan.resolve)
            .values(resolved_at=now)
        )
    created = []
    for event in plan.new:
        try:
            with session.begin_nested():
                session.add(
                    NotificationEvent(
                        key=event.key,
                        kind=event.kind,
                        payload=event.payload,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        deliveries={},
                        created_at=now,
                    )
                )
            created.append(event.key)
        except IntegrityError:  # another worker decided the same event first
            continue
    return created


def _claim(session: Session, now: datetime) -> list[NotificationEvent]:
    due = list(
        session.scalars(
            select(NotificationEvent.id)
            .where(NotificationEvent.state == "pending", NotificationEvent.next_attempt_at <= now)
            .order_by(NotificationEvent.id)
            .limit(CLAIM_BATCH)
        )
    )
    mine = []
    for event_id in due:
        result = session.execute(
            update(NotificationEvent)
            .where(
                NotificationEvent.id == event_id,
                NotificationEvent.state == "pending",
                NotificationEvent.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM_LEASE, attempts=NotificationEvent.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            mine.append(event_id)
    rows = list(session.scalars(select(NotificationEvent).where(NotificationEvent.id.in_(mine))))
    for row in rows:
        session.expunge(row)
    return rows


def body_of(
    kind: str, key: str, payload: dict[str, Any], at: datetime, base_url: str
) -> dict[str, Any]:
    subject, text = message_of(kind, payload)
    url = f"{base_url.rstrip('/')}/settings/admin/unsubscribes"
    if kind == "run_failed":
        url += f"/runs/{payload.get('run_id')}"
    return {
        "event": kind,
        "key": key,
        "created_at": at.isoformat(),
        "subject": subject,
        "text": text,
        "url": url,
        **payload,
    }


def deliver(
    view: NotificationSettingsView,
    secrets: dict[str, str],
    body: dict[str, Any],
    channels: list[str],
    senders: Channels,
) -> dict[str, str]:
    """Send ``body`` on each channel; ``{channel: "sent" | error sentence}``."""
    out: dict[str, str] = {}
    for channel in channels:
        try:
            if channel == "email":
                text = f"{body['text']}\n\n{body['url']}\n"
                senders.email(view, secrets.get("smtp_password"), body["subject"], text)
            else:
                senders.webhook(view, secrets.get("webhook_secret", ""), body["event"], body)
            out[channel] = "sent"
        except DeliveryError as exc:
            out[channel] = str(exc)
    return out


def notify_tick(
    db: Database,
    *,
    secret_key: str,
    base_url: str,
    now: datetime,
    senders: Channels | None = None,
) -> TickResult:
    senders = senders or Channels()
    result = TickResult()
    with db.transaction() as session:
        view = get_notification_settings(session, secret_key)
        if not view.any_enabled:
            return result
        result.created = decide(session, view, now)
    with db.transaction() as session:
        claimed = _claim(session, now)
        secrets = load_secrets(session, secret_key) if claimed else {}
    outcomes: dict[int, dict[str, str]] = {}
    for event in claimed:
        todo = [c for c in _enabled(view) if (event.deliveries or {}).get(c) != "sent"]
        body = body_of(event.kind, event.key, event.payload or {}, event.created_at, base_url)
        outcomes[event.id] = {
            **(event.deliveries or {}),
            **deliver(view, secrets, body, todo, senders),
        }
    with db.transaction() as session:
        for event in claimed:
            deliveries = outcomes[event.id]
            errors = [v for c, v in deliveries.items() if c in _enabled(view) and v != "sent"]
            values: dict[str, Any] = {"deliveries": deliveries}
            if not errors:
                values.update(state="sent", sent_at=now, last_error=None)
                result.sent.append(event.key)
            elif event.attempts >= MAX_DELIVERY_ATTEMPTS:
                values.update(state="failed", last_error=" ".join(errors))
                result.failed.append(event.key)
            else:
                values.update(
                    next_attempt_at=now + delivery_delay(event.attempts),
                    last_error=" ".join(errors),
                )
                result.retrying.append(event.key)
            session.execute(
                update(NotificationEvent).where(NotificationEvent.id == event.id).values(**values)
            )
    for key in result.sent:
        log.info("notification sent", extra={"key": key})
    for key in result.retrying + result.failed:
        log.warning(
            "notification not delivered",
            extra={"key": key, "gave_up": key in result.failed},
        )
    return result


def send_test(
    db: Database,
    *,
    secret_key: str,
    base_url: str,
    now: datetime,
    channel: str | None = None,
    senders: Channels | None = None,
) -> dict[str, str]:
    """Send a test notification now with the stored settings: ``{channel: "sent" |
    error}``; ``channel`` None sends on every configured channel (enabled or not, so a
    channel can be tried before it is switched on)."""
    with db.transaction() as session:
        view = get_notification_settings(session, secret_key)
        secrets = load_secrets(session, secret_key)
    configured = [
        c
        for c, ready in (("email", view.smtp_host and view.email_to), ("webhook", view.webhook_url))
        if ready and (channel is None or c == channel)
    ]
    if not configured:
        which = channel or "any channel"
        return {
            channel
            or "notifications": f"{which}: not set up yet; fill in and save the settings first."
        }
    body = body_of("test", "test", {}, now, base_url)
    return deliver(view, secrets, body, configured, senders or Channels())


def recent_events(session: Session, limit: int = 10) -> list[NotificationEvent]:
    rows = list(
        session.scalars(
            select(NotificationEvent).order_by(NotificationEvent.id.desc()).limit(limit)
        )
    )
    for row in rows:
        session.expunge(row)
    return rows
