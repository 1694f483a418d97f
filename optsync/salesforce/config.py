"""A Salesforce connection's configuration and its validation, as pure code.

:class:`ConnectionConfig` is what the token request (:mod:`optsync.salesforce.auth`), the
storage (:mod:`optsync.salesforce.connection`) and the gateway all take. It lives apart
from both so that neither imports the other: the token fetch needs the configuration,
the storage needs the validation, and the setting names every error cites are defined
once, here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from optsync.errors import UsageError

PUBLIC_LOGIN_HOSTS = {
    "login.salesforce.com": "https://login.salesforce.com",
    "test.salesforce.com": "https://test.salesforce.com",
}
# Settings as users know them: the environment variable and the CLI option.
SETTING_LOGIN_URL = "OPTSYNC_SF_LOGIN_URL (--login-url)"
SETTING_CLIENT_ID = "OPTSYNC_SF_CLIENT_ID (--client-id)"
SETTING_CLIENT_SECRET = "OPTSYNC_SF_CLIENT_SECRET (--client-secret-stdin)"  # noqa: S105
SETTING_USERNAME = "OPTSYNC_SF_USERNAME (--username)"
SETTING_PASSWORD = "OPTSYNC_SF_PASSWORD (--password-stdin)"  # noqa: S105
SETTING_PRIVATE_KEY = "OPTSYNC_SF_PRIVATE_KEY_FILE (--private-key-file)"
SETTING_AUTH = "OPTSYNC_SF_AUTH (--auth)"
SETTING_CA_BUNDLE = "OPTSYNC_SF_CA_BUNDLE (--ca-bundle)"


AuthKind = Literal["jwt", "client_credentials", "password"]
AUTH_KINDS: tuple[AuthKind, ...] = ("jwt", "client_credentials", "password")
DEFAULT_API_VERSION = "62.0"
MIN_API_VERSION = 31
SETTING_API_VERSION = "OPTSYNC_SF_API_VERSION (--api-version)"
_MASK = "********"
MAX_PEM_BYTES = 64 * 1024
_VERSION_RE = re.compile(r"v?(\d{2,3})(?:\.0)?", re.IGNORECASE)  # fullmatch

REQUIRED: dict[str, tuple[str, ...]] = {
    "jwt": ("client_id", "username", "private_key"),
    "client_credentials": ("client_id", "client_secret"),
    "password": ("client_id", "client_secret", "username", "password"),
}
SETTING_OF = {
    "auth": SETTING_AUTH,
    "login_url": SETTING_LOGIN_URL,
    "client_id": SETTING_CLIENT_ID,
    "client_secret": SETTING_CLIENT_SECRET,
    "username": SETTING_USERNAME,
    "password": SETTING_PASSWORD,
    "private_key": SETTING_PRIVATE_KEY,
    "api_version": SETTING_API_VERSION,
    "ca_bundle": SETTING_CA_BUNDLE,
}
SECRET_FIELDS = ("client_secret", "password", "private_key")
IDENTITY_FIELDS = ("auth", "login_url", "username", "ca_bundle")
"""What decides where (and as whom) the secrets are sent: a stored secret is reused only
while all of these are unchanged."""
_IDENTITY_WORDS = {
    "auth": "auth kind",
    "login_url": "login URL",
    "username": "username",
    "ca_bundle": "CA bundle",
}


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything needed to log in to one org. ``repr`` masks the secrets."""

    auth: str
    login_url: str
    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    private_key: str | None = None  # PEM text, not a path
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.masked().items())
        return f"ConnectionConfig({shown})"

    __str__ = __repr__

    def masked(self) -> dict[str, str | None]:
        """Every field, secrets replaced by a mask: safe to print, log or return."""
        out: dict[str, str | None] = {}
        for name in (
            "auth",
            "login_url",
            "client_id",
            "client_secret",
            "username",
            "password",
            "private_key",
            "api_version",
            "ca_bundle",
        ):
            value = getattr(self, name)
            out[name] = (_MASK if value else None) if name in SECRET_FIELDS else value
        return out

    def validated(self) -> ConnectionConfig:
        """A normalised copy, or a :class:`UsageError` naming the field and the fix."""
        if self.auth not in AUTH_KINDS:
            raise UsageError(
                f"{SETTING_AUTH}: {self.auth!r} is not an auth kind.",
                field="auth",
                fix="Use jwt (recommended), client_credentials or password.",
            )
        login_url = normalise_login_url(self.login_url)
        host = (urlsplit(login_url).hostname or "").lower()
        if self.auth == "client_credentials" and host in PUBLIC_LOGIN_HOSTS:
            raise UsageError(
                f"{SETTING_LOGIN_URL}: the client credentials flow does not work through {host}.",
                field="login_url",
                fix="Use your My Domain URL, e.g. https://NAME.my.salesforce.com.",
            )
        for name in REQUIRED[self.auth]:
            value = getattr(self, name)
            if value is None or not str(value).strip():
                raise UsageError(
                    f"{SETTING_OF[name]} is required for {self.auth} auth.",
                    field=name,
                    fix=_required_fix(name),
                )
        if self.private_key is not None and self.auth == "jwt":
            check_private_key(self.private_key)
        ca_bundle = None
        if self.ca_bundle is not None and self.ca_bundle.strip():
            ca_bundle = absolute_path(self.ca_bundle)
            check_ca_bundle(ca_bundle)
        return replace(
            self,
            login_url=login_url,
            ca_bundle=ca_bundle,
            api_version=normalise_api_version(self.api_version),
            client_id=_strip(self.client_id),
            username=_strip(self.username),
        )


def _identity(config: ConnectionConfig) -> dict[str, str | None]:
    """The identity fields as they would be stored (normalised where that cannot fail)."""
    try:
        login_url: str | None = normalise_login_url(config.login_url)
    except UsageError:
        login_url = config.login_url
    ca_bundle = config.ca_bundle.strip() if config.ca_bundle else None
    return {
        "auth": config.auth,
        "login_url": login_url,
        "username": _strip(config.username) or None,
        "ca_bundle": absolute_path(ca_bundle) if ca_bundle else None,
    }


def with_stored_secrets(
    submitted: ConnectionConfig, stored: ConnectionConfig | None
) -> ConnectionConfig:
    """``submitted`` with its empty secrets filled from ``stored`` — only while the auth
    kind, login URL, username and CA bundle are unchanged.

    Otherwise a stored secret could be sent to another address (or as another user) by
    someone who never knew it, so a required secret left empty is a :class:`UsageError`
    naming the field and what changed.
    """
    if stored is None:
        return submitted
    empty = [name for name in SECRET_FIELDS if not getattr(submitted, name)]
    new, old = _identity(submitted), _identity(stored)
    changed = [name for name in IDENTITY_FIELDS if new[name] != old[name]]
    if not changed:
        kept = {name: getattr(stored, name) for name in empty if getattr(stored, name)}
        return replace(submitted, **kept)
    needed = [name for name in REQUIRED.get(submitted.auth, ()) if name in empty]
    if needed:
        what = " and ".join(_IDENTITY_WORDS[name] for name in changed)
        name = needed[0]
        raise UsageError(
            f"{SETTING_OF[name]}: enter it again: the {what} changed, so the stored one is "
            "not reused.",
            field=name,
            fix="A stored secret is only reused while the auth kind, login URL, username "
            "and CA bundle stay the same.",
        )
    return submitted


def absolute_path(path: str) -> str:
    """``path`` made absolute against the current directory (``~`` expanded), so a stored
    path means the same file from every working directory."""
    return str(Path(path.strip()).expanduser().resolve())


def _strip(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _required_fix(name: str) -> str:
    return {
        "client_id": "Copy the consumer key from the connected app (Manage Consumer Details).",
        "client_secret": "Copy the consumer secret from the connected app; give it on stdin "
        "(--client-secret-stdin) or in OPTSYNC_SF_CLIENT_SECRET.",
        "username": "Give the integration user's Salesforce username.",
        "password": "Give the password followed by the security token, on stdin "
        "(--password-stdin) or in OPTSYNC_SF_PASSWORD.",
        "private_key": "Give the PEM private key whose certificate is uploaded to the "
        "connected app (--private-key-file or OPTSYNC_SF_PRIVATE_KEY_FILE).",
    }[name]


def normalise_login_url(value: str | None) -> str:
    """An ``https://`` origin (plus a site path for Experience Cloud), no trailing slash."""
    raw = (value or "").strip()
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise UsageError(
            f"{SETTING_LOGIN_URL}: {raw!r} is not an https:// URL.",
            field="login_url",
            fix="Use https://login.salesforce.com, https://test.salesforce.com or your My "
            "Domain URL (https://NAME.my.salesforce.com).",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError(
            f"{SETTING_LOGIN_URL}: give only the scheme, host and port (no user, query or "
            "fragment).",
            field="login_url",
            fix="For example https://NAME.my.salesforce.com.",
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(
            f"{SETTING_LOGIN_URL}: the port is not a number.", field="login_url"
        ) from None
    return f"https://{parts.netloc.lower()}{parts.path}".rstrip("/")


def normalise_api_version(value: str | None) -> str:
    """``62``, ``v62.0`` or ``62.0`` → ``"62.0"``; versions below 31 are retired."""
    raw = (value or DEFAULT_API_VERSION).strip()
    m = _VERSION_RE.fullmatch(raw)
    if not m:
        raise UsageError(
            f"{SETTING_API_VERSION}: {raw!r} is not an API version.",
            field="api_version",
            fix=f"Use a version such as {DEFAULT_API_VERSION}.",
        )
    major = int(m.group(1))
    if major < MIN_API_VERSION:
        raise UsageError(
            f"{SETTING_API_VERSION}: v{major}.0 is retired by Salesforce.",
            field="api_version",
            fix=f"Use {MIN_API_VERSION}.0 or later (default {DEFAULT_API_VERSION}).",
        )
    return f"{major}.0"


def check_private_key(pem: str) -> None:
    """The key must be an unencrypted PEM RSA private key (JWT bearer is RS256 only)."""
    fix = (
        "Use the unencrypted PEM RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN "
        "RSA PRIVATE KEY-----) whose certificate is uploaded to the connected app."
    )
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise UsageError(
            f"{SETTING_PRIVATE_KEY}: the private key is passphrase-protected.",
            field="private_key",
            fix="Decrypt it (openssl pkey -in key.pem -out plain.pem) and keep it private.",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(
            f"{SETTING_PRIVATE_KEY}: not a valid PEM private key.", field="private_key", fix=fix
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(
            f"{SETTING_PRIVATE_KEY}: the key is not an RSA key (Salesforce signs JWTs with "
            "RS256 only).",
            field="private_key",
            fix=fix,
        )


def read_private_key(path: str | Path) -> str:
    """Read and check a PEM key file; every unreadable path gets the same error, which
    names the setting, never the content or why the file could not be read."""
    p = Path(path).expanduser()
    try:
        if not p.is_file():  # a FIFO or device could block or never end
            raise FileNotFoundError(p)
        with p.open("rb") as fh:
            data = fh.read(MAX_PEM_BYTES + 1)
        text = data.decode("ascii") if len(data) <= MAX_PEM_BYTES else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    if "-----BEGIN" not in text:
        raise UsageError(
            f"{SETTING_PRIVATE_KEY}: {p} cannot be used as a private key.",
            field="private_key",
            fix="Point it at a readable PEM private key file.",
        )
    check_private_key(text)
    return text


def check_ca_bundle(path: str) -> None:
    """The file must be a readable PEM file of certificates. Every unusable path gets the
    same error (missing, a directory, unreadable, not PEM), so the field cannot be used to
    probe which files exist on the server."""
    p = Path(path).expanduser()
    try:
        if not p.is_file():  # a FIFO or device could block or never end
            raise FileNotFoundError(p)
        with p.open("rb") as fh:
            head = fh.read(MAX_PEM_BYTES)
    except OSError:
        head = b""
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise UsageError(
            f"{SETTING_CA_BUNDLE}: {p} cannot be used as a CA bundle.",
            field="ca_bundle",
            fix="Point it at a readable PEM file of CA certificates (the emulator prints its own).",
        )
