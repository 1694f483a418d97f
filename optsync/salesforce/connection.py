"""The Salesforce connection: its configuration, validation and storage.

A connection is stored once (the ``salesforce_connection`` singleton row) by
``optsync salesforce connect`` or the UI, with its secrets — consumer secret, password,
JWT private key — sealed by :class:`optsync.security.SecretBox`, so a database dump
alone never reveals them. ``OPTSYNC_SF_*`` variables, when set, win over the stored
values one by one, so a deployment can pin any part of the connection (or all of it)
from its environment. :func:`resolve_connection` is the one place that merges the two.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy.orm import Session

from optsync.errors import ConfigError, UsageError
from optsync.salesforce.config import (
    AUTH_KINDS,
    DEFAULT_API_VERSION,
    MIN_API_VERSION,
    PUBLIC_LOGIN_HOSTS,
    REQUIRED,
    SECRET_FIELDS,
    SETTING_API_VERSION,
    SETTING_AUTH,
    SETTING_OF,
    AuthKind,
    ConnectionConfig,
    check_ca_bundle,
    check_private_key,
    normalise_api_version,
    normalise_login_url,
    read_private_key,
)
from optsync.security import SecretBox
from optsync.settings import Settings
from optsync.store.models import SalesforceConnection

__all__ = [
    "AUTH_KINDS",
    "DEFAULT_API_VERSION",
    "MIN_API_VERSION",
    "PUBLIC_LOGIN_HOSTS",
    "REQUIRED",
    "SECRET_FIELDS",
    "SETTING_API_VERSION",
    "SETTING_OF",
    "AuthKind",
    "ConnectionConfig",
    "check_ca_bundle",
    "check_private_key",
    "delete_connection",
    "env_overrides",
    "load_connection",
    "normalise_api_version",
    "normalise_login_url",
    "read_private_key",
    "resolve_connection",
    "save_connection",
]


# -- storage --------------------------------------------------------------------------

UNDECRYPTABLE = (
    "A Salesforce connection is stored, but its credentials cannot be decrypted with this "
    "secret key: OPTSYNC_SECRET_KEY is not the key they were stored with."
)
UNDECRYPTABLE_FIX = (
    "Set OPTSYNC_SECRET_KEY back to the key the connection was stored with, or store it "
    "again under this key with `optsync salesforce connect` (or Settings → Admin Settings → "
    "Unsubscribes → Integrations → Salesforce connection); see docs/security.md."
)


def load_connection(session: Session, secret_key: str) -> ConnectionConfig | None:
    """The stored connection, secrets decrypted, or ``None`` when none is stored."""
    row = session.get(SalesforceConnection, 1)
    if row is None:
        return None
    try:
        secrets: dict[str, Any] = SecretBox(secret_key).open(row.secrets)
    except ConfigError:
        raise ConfigError(
            UNDECRYPTABLE, field="OPTSYNC_SECRET_KEY", fix=UNDECRYPTABLE_FIX
        ) from None
    return ConnectionConfig(
        auth=row.auth,
        login_url=row.login_url,
        client_id=row.client_id,
        client_secret=secrets.get("client_secret"),
        username=row.username,
        password=secrets.get("password"),
        private_key=secrets.get("private_key"),
        api_version=row.api_version,
        ca_bundle=row.ca_bundle,
    )


def save_connection(
    session: Session, config: ConnectionConfig, secret_key: str, *, now: datetime
) -> ConnectionConfig:
    """Validate and store ``config`` as the one connection (replacing any other)."""
    config = config.validated()
    sealed = SecretBox(secret_key).seal(
        {name: getattr(config, name) for name in SECRET_FIELDS if getattr(config, name)}
    )
    row = session.get(SalesforceConnection, 1, with_for_update=True)
    if row is None:
        row = SalesforceConnection(id=1, created_at=now)
        session.add(row)
    row.auth = config.auth
    row.login_url = config.login_url
    row.client_id = config.client_id
    row.username = config.username
    row.api_version = config.api_version
    row.ca_bundle = config.ca_bundle
    row.secrets = sealed
    row.updated_at = now
    session.flush()
    return config


def delete_connection(session: Session) -> bool:
    """Forget the stored connection; ``True`` if there was one."""
    row = session.get(SalesforceConnection, 1, with_for_update=True)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


# -- environment ----------------------------------------------------------------------


def env_overrides(settings: Settings) -> dict[str, str]:
    """The connection fields set through ``OPTSYNC_SF_*`` (private key read from its file)."""
    out: dict[str, str] = {}
    plain = {
        "auth": settings.sf_auth,
        "login_url": settings.sf_login_url,
        "client_id": settings.sf_client_id,
        "username": settings.sf_username,
        "api_version": settings.sf_api_version,
        "ca_bundle": str(settings.sf_ca_bundle) if settings.sf_ca_bundle else None,
    }
    for name, value in plain.items():
        if value:
            out[name] = value
    for name, secret in (
        ("client_secret", settings.sf_client_secret),
        ("password", settings.sf_password),
    ):
        if secret is not None and secret.get_secret_value():
            out[name] = secret.get_secret_value()
    if settings.sf_private_key_file is not None:
        out["private_key"] = read_private_key(settings.sf_private_key_file)
    return out


def resolve_connection(settings: Settings, session: Session) -> ConnectionConfig | None:
    """The connection in force: the stored one with every set ``OPTSYNC_SF_*`` on top.

    Returns ``None`` when nothing is stored and no ``OPTSYNC_SF_AUTH`` is set; raises a
    :class:`UsageError` when the result is incomplete or invalid.
    """
    overrides = env_overrides(settings)
    stored = load_connection(session, settings.resolved_secret_key)
    if stored is None:
        if not overrides:
            return None
        if "auth" not in overrides:
            raise UsageError(
                f"OPTSYNC_SF_* variables are set but {SETTING_AUTH} is not, and no "
                "connection is stored.",
                field="auth",
                fix="Set OPTSYNC_SF_AUTH to jwt, client_credentials or password, or run "
                "`optsync salesforce connect`.",
            )
        config = ConnectionConfig(auth=overrides["auth"], login_url=overrides.get("login_url", ""))
    else:
        config = stored
    if overrides:
        config = replace(config, **cast(dict[str, Any], overrides))
    return config.validated()
