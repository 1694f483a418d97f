"""Rotating ``OPTSYNC_SECRET_KEY`` without losing what was sealed or signed with it.

One transaction does everything stored in the database, so a failed rotation changes
nothing:

* the stored Salesforce secrets are opened with the old key and sealed with the new one
  (a blob the old key cannot open stops the rotation: nothing would be lost silently),
  and so are the notification secrets (SMTP password, webhook signing secret);
* the old key's **unsubscribe-link key** joins the retired link keys (``retired_link_keys``),
  every one of them sealed under the new key; the ``/u/`` pages verify a link with the
  current key, then with the retired ones, so links in emails already sent keep working,
  for ever (only the derived link key is kept, never the old secret key itself);
* every user gets a new session epoch: every session ends at its next request, on every
  running server, even before they restart with the new key;
* login throttle rows (HMACs under the old key) are dropped: they name nothing any more;
* an ``admin_audit`` row records who rotated and when.

Where the new key lives is the caller's business (``optsync secret rotate``: the data
dir's ``secret.key``, or the operator's ``OPTSYNC_SECRET_KEY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from optsync.errors import ConfigError, UsageError
from optsync.security import SecretBox
from optsync.services.accounts import audit, end_all_sessions
from optsync.services.links import link_key, retired_key_box
from optsync.services.notifications.settings import reseal as reseal_notification_secrets
from optsync.store.models import LoginAttempt, RetiredLinkKey, SalesforceConnection

MIN_KEY_LENGTH = 32


@dataclass(frozen=True)
class RotationReport:
    credentials_resealed: bool
    retired_link_keys: int
    sessions_ended: int


def check_new_key(old_key: str, new_key: str) -> None:
    if len(new_key) < MIN_KEY_LENGTH:
        raise UsageError(
            f"new key: use at least {MIN_KEY_LENGTH} characters.",
            field="OPTSYNC_SECRET_KEY",
            fix="Generate one, e.g. `openssl rand -base64 48`.",
        )
    if new_key == old_key:
        raise UsageError(
            "new key: it is the current key.",
            field="OPTSYNC_SECRET_KEY",
            fix="Give a different key.",
        )


def rotate(
    session: Session, old_key: str, new_key: str, *, actor: str, now: datetime
) -> RotationReport:
    """Re-seal and re-key everything in the database for ``new_key`` (one transaction)."""
    check_new_key(old_key, new_key)
    row = session.get(SalesforceConnection, 1, with_for_update=True)
    if row is not None:
        try:
            values = SecretBox(old_key).open(row.secrets)
        except ConfigError:
            raise ConfigError(
                "The stored Salesforce credentials cannot be decrypted with the current "
                "secret key, so they cannot be re-encrypted; nothing was changed.",
                field="OPTSYNC_SECRET_KEY",
                fix="Run the rotation with the key they were stored with, or run "
                "`optsync salesforce connect` again first.",
            ) from None
        row.secrets = SecretBox(new_key).seal(values)
        row.updated_at = now

    try:
        reseal_notification_secrets(session, old_key, new_key)
    except ConfigError:
        raise ConfigError(
            "The stored notification secrets (SMTP password, webhook secret) cannot be "
            "decrypted with the current secret key; nothing was changed.",
            field="OPTSYNC_SECRET_KEY",
            fix="Enter them again (Integrations → Notifications) first, or rotate with the "
            "key they were stored with.",
        ) from None
    old_box, new_box = retired_key_box(old_key), retired_key_box(new_key)
    retired = list(session.scalars(select(RetiredLinkKey).order_by(RetiredLinkKey.id)))
    for entry in retired:
        entry.sealed_key = new_box.encrypt(old_box.decrypt(entry.sealed_key))
    session.add(RetiredLinkKey(sealed_key=new_box.encrypt(link_key(old_key)), retired_at=now))
    sessions = end_all_sessions(session)
    session.execute(delete(LoginAttempt))
    audit(
        session,
        actor=actor,
        action="secret.rotate",
        target="OPTSYNC_SECRET_KEY",
        now=now,
        detail=f"{len(retired) + 1} retired link keys; {sessions} users signed out",
    )
    session.flush()
    return RotationReport(row is not None, len(retired) + 1, sessions)
