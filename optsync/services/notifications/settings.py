"""The notification settings: read with defaults, change with validation, secrets sealed.

The SMTP password and the webhook signing secret are sealed together in
``notification_settings.secrets`` with the same :class:`optsync.security.SecretBox` as the
Salesforce connection's secrets (``optsync secret rotate`` re-seals both). Neither is
ever shown back: the view says only whether one is stored. The webhook secret is
generated here (never typed) and returned once, by the change that made it.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.domain.health import STUCK_AFTER_MIN
from optsync.errors import ConfigError, UsageError
from optsync.security import SecretBox
from optsync.services.accounts import audit
from optsync.store.models import NotificationSettings

SECURITY_CHOICES = ("none", "starttls", "tls")
MAX_RECIPIENTS = 20
HOST_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class NotificationSettingsView:
    email_enabled: bool = False
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str | None = None
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    webhook_enabled: bool = False
    webhook_url: str | None = None
    webhook_timeout_s: int = 10
    webhook_retries: int = 2
    stuck_after_min: int = STUCK_AFTER_MIN
    notify_resolved: bool = True
    smtp_password_stored: bool = False
    webhook_secret_stored: bool = False
    enabled_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def any_enabled(self) -> bool:
        return self.email_enabled or self.webhook_enabled

    def as_dict(self) -> dict[str, Any]:
        """For ``optsync notify show --json`` and the form: never a secret."""
        data = asdict(self)
        data["email_to"] = list(self.email_to)
        for key in ("enabled_at", "updated_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


EDITABLE = (
    "email_enabled",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "email_from",
    "email_to",
    "webhook_enabled",
    "webhook_url",
    "webhook_timeout_s",
    "webhook_retries",
    "stuck_after_min",
    "notify_resolved",
)
DEFAULTS = NotificationSettingsView()


def get_notification_settings(session: Session, secret_key: str) -> NotificationSettingsView:
    row = session.get(NotificationSettings, 1)
    if row is None:
        return DEFAULTS
    try:
        stored = open_secrets(row, secret_key)
    except ConfigError:  # sealed under another key: stored, but unusable until re-entered
        stored = {"smtp_password": "?", "webhook_secret": "?"}
    return NotificationSettingsView(
        email_enabled=row.email_enabled,
        smtp_host=row.smtp_host,
        smtp_port=row.smtp_port,
        smtp_security=row.smtp_security,
        smtp_username=row.smtp_username,
        email_from=row.email_from,
        email_to=tuple(a for a in (row.email_to or "").split(",") if a),
        webhook_enabled=row.webhook_enabled,
        webhook_url=row.webhook_url,
        webhook_timeout_s=row.webhook_timeout_s,
        webhook_retries=row.webhook_retries,
        stuck_after_min=row.stuck_after_min,
        notify_resolved=row.notify_resolved,
        smtp_password_stored=bool(stored.get("smtp_password")),
        webhook_secret_stored=bool(stored.get("webhook_secret")),
        enabled_at=row.enabled_at,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def open_secrets(row: NotificationSettings | None, secret_key: str) -> dict[str, str]:
    if row is None or row.secrets is None:
        return {}
    return {k: str(v) for k, v in SecretBox(secret_key).open(row.secrets).items() if v}


def load_secrets(session: Session, secret_key: str) -> dict[str, str]:
    """``{"smtp_password", "webhook_secret"}`` as stored (for sending only)."""
    return open_secrets(session.get(NotificationSettings, 1), secret_key)


# -- validation -----------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise UsageError(f"{field}: give true or false.", field=field)


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            raise UsageError(f"{field}: give a whole number from {low} to {high}.", field=field)
    if not low <= value <= high:
        raise UsageError(f"{field}: give a whole number from {low} to {high}.", field=field)
    return int(value)


def _text(field: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{field}: give text.", field=field)
    text = value.strip()
    if CONTROL_RE.search(text):
        raise UsageError(f"{field}: use plain text on one line.", field=field)
    if len(text) > limit:
        raise UsageError(f"{field}: keep it under {limit} characters.", field=field)
    return text or None


def _address(field: str, value: str) -> str:
    try:
        return normalise_email(value)
    except InvalidEmail as exc:
        raise UsageError(f"{field}: {exc}", field=field) from None


def check_webhook_url(value: str) -> str:
    """An ``https://`` URL (``http://`` only to a loopback host), no credentials in it."""
    field = "webhook_url"
    if CONTROL_RE.search(value) or " " in value:
        raise UsageError(f"{field}: a URL has no spaces or control characters.", field=field)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise UsageError(
            f"{field}: not a URL; give e.g. https://hooks.example.com/optsync.", field=field
        ) from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise UsageError(
            f"{field}: give an https:// URL, e.g. https://hooks.example.com/optsync.", field=field
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise UsageError(
            f"{field}: use https:// (plain http:// is allowed only to this machine, "
            "127.0.0.1 or localhost).",
            field=field,
        )
    if parts.username or parts.password:
        raise UsageError(
            f"{field}: leave credentials out of the URL; requests are signed instead.",
            field=field,
        )
    if port == 0:
        raise UsageError(f"{field}: the port must be 1 to 65535.", field=field)
    return value


def validate(
    current: NotificationSettingsView, changes: dict[str, Any]
) -> NotificationSettingsView:
    """Every given value checked; the error names the setting and the fix."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise UsageError(f"{unknown[0]}: unknown notification setting.", field=unknown[0])
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("email_enabled", "webhook_enabled", "notify_resolved"):
            values[key] = _bool(key, value)
        elif key == "smtp_port":
            values[key] = _int(key, value, 1, 65535)
        elif key == "webhook_timeout_s":
            values[key] = _int(key, value, 1, 60)
        elif key == "webhook_retries":
            values[key] = _int(key, value, 0, 5)
        elif key == "stuck_after_min":
            values[key] = _int(key, value, 1, 1440)
        elif key == "smtp_security":
            if value not in SECURITY_CHOICES:
                raise UsageError(
                    f"smtp_security: choose one of {', '.join(SECURITY_CHOICES)}.",
                    field=key,
                )
            values[key] = value
        elif key == "smtp_host":
            host = _text(key, value, 253)
            if host is not None and not (HOST_RE.fullmatch(host) or is_loopback(host)):
                raise UsageError(
                    "smtp_host: give a host name such as smtp.example.com or an IP address.",
                    field=key,
                )
            values[key] = host
        elif key == "smtp_username":
            values[key] = _text(key, value, 254)
        elif key == "email_from":
            text = _text(key, value, 254)
            values[key] = _address(key, text) if text else None
        elif key == "email_to":
            items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
            addresses = [str(a).strip() for a in items if str(a).strip()]
            if len(addresses) > MAX_RECIPIENTS:
                raise UsageError(f"email_to: give at most {MAX_RECIPIENTS} addresses.", field=key)
            values[key] = tuple(dict.fromkeys(_address(key, a) for a in addresses))
        elif key == "webhook_url":
            text = _text(key, value, 2000)
            values[key] = check_webhook_url(text) if text else None
    result = replace(current, **values)
    if result.email_enabled:
        missing = [
            name
            for name, given in (
                ("smtp_host", result.smtp_host),
                ("email_from", result.email_from),
                ("email_to", result.email_to),
            )
            if not given
        ]
        if missing:
            raise UsageError(
                f"{missing[0]}: needed to send notifications by email.", field=missing[0]
            )
    if result.webhook_enabled and not result.webhook_url:
        raise UsageError(
            "webhook_url: needed to send notifications to a webhook.", field="webhook_url"
        )
    return result


def check_password_transport(view: NotificationSettingsView, has_password: bool) -> None:
    """A password never crosses the network in clear: security ``none`` with a password
    is refused unless the SMTP server is on this machine."""
    if (
        has_password
        and view.smtp_security == "none"
        and view.smtp_host
        and not is_loopback(view.smtp_host)
    ):
        raise UsageError(
            "smtp_security: a password would be sent unencrypted; choose starttls or tls "
            "(none is allowed with a password only for a server on this machine).",
            field="smtp_security",
        )


# -- changing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    view: NotificationSettingsView
    changed: tuple[str, ...]
    new_webhook_secret: str | None = None
    """The webhook signing secret generated by this change: shown once, never again."""


KEEP = object()
"""``smtp_password=KEEP``: leave the stored password as it is."""


def update_notification_settings(
    session: Session,
    changes: dict[str, Any],
    *,
    secret_key: str,
    actor: str,
    now: datetime,
    smtp_password: Any = KEEP,
    new_webhook_secret: bool = False,
) -> Saved:
    """Validate and store ``changes`` (one transaction; an audit row names the changed
    settings, never a value of a secret). ``smtp_password``: a new password, ``None`` to
    remove it, or :data:`KEEP`. A webhook secret is generated when a webhook is set up and
    none is stored, or on ``new_webhook_secret``."""
    row = session.get(NotificationSettings, 1, with_for_update=True)
    current = get_notification_settings(session, secret_key)
    view = validate(current, changes)
    try:
        stored = open_secrets(row, secret_key)
    except ConfigError:  # sealed under a lost key: what is entered now replaces it
        stored = {}
    password_changed = smtp_password is not KEEP
    if password_changed:
        if smtp_password is not None:
            smtp_password = _text("smtp_password", smtp_password, 500)
        if smtp_password:
            stored["smtp_password"] = smtp_password
        else:
            stored.pop("smtp_password", None)
    check_password_transport(view, bool(stored.get("smtp_password")))
    generated = None
    if new_webhook_secret or (view.webhook_url and not stored.get("webhook_secret")):
        generated = "whsec_" + secrets.token_urlsafe(32)
        stored["webhook_secret"] = generated
    if row is None:
        row = NotificationSettings(id=1, updated_at=now)
        session.add(row)
    before = {k: getattr(current, k) for k in EDITABLE}
    for key in EDITABLE:
        value = getattr(view, key)
        setattr(row, key, ",".join(value) if key == "email_to" else value)
    if view.any_enabled and not current.any_enabled:
        row.enabled_at = now
    row.secrets = SecretBox(secret_key).seal(stored) if stored else None
    row.updated_at = now
    row.updated_by = actor[:254]
    session.flush()
    changed = [k for k in EDITABLE if before[k] != getattr(view, k)]
    if password_changed:
        changed.append("smtp_password")
    if generated:
        changed.append("webhook_secret")
    audit(
        session,
        actor=actor,
        action="notifications.update",
        target="notifications",
        now=now,
        detail="changed: " + (", ".join(changed) if changed else "nothing"),
    )
    return Saved(get_notification_settings(session, secret_key), tuple(changed), generated)


def reseal(session: Session, old_key: str, new_key: str) -> bool:
    """Re-seal the stored secrets under a new secret key (``optsync secret rotate``)."""
    row = session.get(NotificationSettings, 1, with_for_update=True)
    if row is None or row.secrets is None:
        return False
    row.secrets = SecretBox(new_key).seal(SecretBox(old_key).open(row.secrets))
    return True
