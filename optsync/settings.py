"""Configuration: one frozen object read once from ``OPTSYNC_*`` environment variables.

Secrets are ``SecretStr`` so they print masked. The data dir is created on first use and
the secret key, when not given, is generated once into ``<data dir>/secret.key`` with
owner-only permissions.
"""

from __future__ import annotations

import os
import re
import secrets
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from optsync.errors import ConfigError

SUPPORTED_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")

REASON_CHOICES = ("too_many", "not_relevant", "never_signed_up", "other")
"""The reasons the public page can offer (each has a text in every page catalogue)."""

LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
_LOGO_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_URL_TEXT = re.compile(r"[A-Za-z0-9._~!$&()*+=:@%/?-]+")  # no , ; ' (CSP, HTML)
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def check_logo(value: str) -> str:
    """An ``https://`` URL of an image (no credentials, nothing a page or a CSP header
    could be broken out of with), or a relative path of an image file under the data dir
    (no ``..``, no hidden first part, an image extension). Raises ``ValueError``."""
    if value.lower().startswith(("http://", "https://")):
        if len(value) > 2000 or not _URL_TEXT.fullmatch(value):
            raise ValueError("the logo URL has characters a URL may not have, or is too long")
        url = urlsplit(value)
        if url.scheme != "https" or not url.hostname or not _HOST.fullmatch(url.hostname):
            raise ValueError("the logo URL must be https://HOST/… (pages are served over https)")
        if url.username or url.password:
            raise ValueError("the logo URL must not carry a user name or password")
        try:
            url.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise ValueError("the logo URL's port is not a number") from None
        return value
    return check_logo_path(value)


def check_logo_path(value: str) -> str:
    """A relative image path under the data dir (see :func:`check_logo`)."""
    if not _LOGO_PATH.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(
            "give an https:// URL, or a path under the data dir such as branding/logo.png "
            "(letters, digits, . _ - and /; no ..)"
        )
    if PurePosixPath(value).suffix.lower() not in LOGO_TYPES:
        raise ValueError(f"the logo file must end in one of {', '.join(LOGO_TYPES)}")
    return value


class Settings(BaseSettings):
    """Every setting optsync reads, with its help text."""

    model_config = SettingsConfigDict(env_prefix="OPTSYNC_", frozen=True, extra="ignore")

    data_dir: Path = Field(
        default=Path("./.optsync"),
        description="Where the embedded database, keys and emulator data live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL: sqlite:///... or postgresql+psycopg://... "
        "(default: a SQLite file in the data dir).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs unsubscribe links and sessions, encrypts stored credentials "
        "(default: generated once into the data dir).",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL used in unsubscribe links.",
    )
    sf_auth: Literal["jwt", "client_credentials", "password"] | None = Field(
        default=None, description="Salesforce OAuth flow."
    )
    sf_login_url: str | None = Field(default=None, description="Login host or My Domain URL.")
    sf_client_id: str | None = Field(default=None, description="Connected app consumer key.")
    sf_client_secret: SecretStr | None = Field(default=None, description="Consumer secret.")
    sf_username: str | None = Field(default=None, description="Integration user's username.")
    sf_password: SecretStr | None = Field(default=None, description="Integration user's password.")
    sf_private_key_file: Path | None = Field(default=None, description="PEM key for JWT bearer.")
    sf_api_version: str | None = Field(default=None, description="API version, e.g. 62.0.")
    sf_ca_bundle: Path | None = Field(default=None, description="CA bundle to trust (emulator).")
    sf_pubsub_url: str = Field(
        default="api.pubsub.salesforce.com:7443",
        description="Pub/Sub API endpoint (host:port) the live pull subscribes to.",
    )
    log_format: Literal["logfmt", "json"] = Field(
        default="logfmt", description="Log lines as logfmt or JSON (also `--log-format`)."
    )
    keep_pushes_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days to keep sent and cancelled pushes (a person's latest push is "
        "always kept; the ledger is kept forever).",
    )
    keep_run_failures_days: int = Field(
        default=90, ge=1, le=3650, description="Days to keep a sync run's per-record failures."
    )

    public_sender_name: str | None = Field(
        default=None,
        max_length=100,
        description="Who the public unsubscribe pages say the emails come from (default: "
        'no name; the pages then say "Email preferences").',
    )
    public_logo: str | None = Field(
        default=None,
        description="Logo on the public pages: an https:// image URL, or a file (png, jpg, "
        "gif, webp, svg) under the data dir such as branding/logo.png, served at "
        "/public/logo (default: no logo).",
    )
    public_reasons: str = Field(
        default=",".join(REASON_CHOICES),
        description="Reasons the unsubscribe page offers to choose from, comma-separated, "
        f"of {', '.join(REASON_CHOICES)}; `other` comes with a text box. Empty: no "
        "question is asked. Answering is always optional.",
    )

    @field_validator("public_sender_name")
    @classmethod
    def _check_sender_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = " ".join(value.split())
        if any(not ch.isprintable() for ch in cleaned):
            raise ValueError("must be printable text")
        return cleaned or None

    @field_validator("public_logo")
    @classmethod
    def _check_logo(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        return check_logo(value.strip())

    @field_validator("public_reasons")
    @classmethod
    def _check_reasons(cls, value: str) -> str:
        chosen = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [c for c in chosen if c not in REASON_CHOICES]
        if unknown:
            raise ValueError(
                f"unknown reason {unknown[0]!r}; choose from {', '.join(REASON_CHOICES)}"
            )
        if len(set(chosen)) != len(chosen):
            raise ValueError("names a reason twice")
        return ",".join(chosen)

    @property
    def reason_choices(self) -> tuple[str, ...]:
        """The reasons the unsubscribe page offers, in the configured order."""
        return tuple(c for c in self.public_reasons.split(",") if c)

    @field_validator("database_url")
    @classmethod
    def _check_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split(":", 1)[0].lower()
        if scheme == "postgresql":
            value = "postgresql+psycopg" + value[len("postgresql") :]
            scheme = "postgresql+psycopg"
        if scheme not in SUPPORTED_SCHEMES:
            raise ValueError(
                f"unsupported database scheme {scheme!r}; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("sf_api_version")
    @classmethod
    def _check_api_version(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lstrip("vV")
        try:
            major = float(value)
        except ValueError:
            raise ValueError("must look like 62.0") from None
        if major < 31:
            raise ValueError("API versions below 31.0 are retired by Salesforce")
        return f"{major:.1f}"

    # -- derived values -------------------------------------------------------------
    def ensure_data_dir(self) -> Path:
        """Create the data dir (owner-only) if needed and check that it is writable."""
        path = self.data_dir.expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"OPTSYNC_DATA_DIR {path} cannot be created: {exc.strerror}.",
                field="OPTSYNC_DATA_DIR",
                fix="Point it at a writable directory.",
            ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(
                f"OPTSYNC_DATA_DIR {path} is not writable.",
                field="OPTSYNC_DATA_DIR",
                fix="Point it at a writable directory or fix its permissions.",
            )
        return path

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.ensure_data_dir() / 'optsync.db'}"

    @cached_property
    def resolved_secret_key(self) -> str:
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        key_file = self.ensure_data_dir() / "secret.key"
        if key_file.exists():
            return key_file.read_text().strip()
        key = secrets.token_urlsafe(48)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets masked: safe to print or log."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "********" if value.get_secret_value() else ""
            elif name == "database_url" and value:
                out[name] = _mask_url_password(value)
            else:
                out[name] = "" if value is None else str(value)
        return out


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # the URL was validated already; never leak it on a parse failure
        return "********"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; turn a bad value into one clear ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(
            f"OPTSYNC_{field.upper()}: {msg}.", field=f"OPTSYNC_{field.upper()}"
        ) from None
