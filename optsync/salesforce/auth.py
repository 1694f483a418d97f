"""Minting Salesforce access tokens ourselves: JWT bearer, client credentials, password.

Why not simple-salesforce's login: it always posts to ``https://{domain}.salesforce.com``,
so it can reach neither a My Domain URL with a port nor the local emulator, and its
errors do not say which setting is wrong. Here the token request goes to the configured
login URL with the connection's own HTTP session (timeouts, CA), transient failures
(network errors, timeouts, 5xx) are retried a few times with backoff, and every refusal
becomes a :class:`SalesforceAuthError` naming the setting to fix.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from optsync.salesforce.config import (
    PUBLIC_LOGIN_HOSTS,
    SETTING_AUTH,
    SETTING_CA_BUNDLE,
    SETTING_CLIENT_ID,
    SETTING_CLIENT_SECRET,
    SETTING_LOGIN_URL,
    SETTING_PASSWORD,
    SETTING_PRIVATE_KEY,
    SETTING_USERNAME,
    ConnectionConfig,
)
from optsync.salesforce.errors import SalesforceAuthError, SalesforceAuthUnavailable

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 (a URL path)
JWT_LIFETIME_S = 180  # Salesforce wants exp within 3 minutes
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 4.0
_DESCRIPTION_MAX = 300


@dataclass(frozen=True)
class Token:
    """A successful token response (§1.6). ``repr`` never shows the access token."""

    access_token: str = field(repr=False)
    instance_url: str
    identity_url: str | None = None
    issued_at: datetime | None = None
    scope: str | None = None
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type)

    @property
    def org_id(self) -> str | None:
        """The org id from the identity URL ``…/id/{orgId}/{userId}``."""
        parts = (self.identity_url or "").rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 and parts[-3:-2] == ["id"] else None


def jwt_audience(login_url: str) -> str:
    """The ``aud`` claim: the public login host for login/test, else the login URL itself.

    Salesforce documents ``https://login.salesforce.com`` and
    ``https://test.salesforce.com``; for a My Domain (when logins through the public
    hosts are blocked) and for the emulator the login URL's origin is used.
    """
    parts = urlsplit(login_url)
    host = (parts.hostname or "").lower()
    if host in PUBLIC_LOGIN_HOSTS:
        return PUBLIC_LOGIN_HOSTS[host]
    return f"{parts.scheme}://{parts.netloc}".rstrip("/")


def jwt_assertion(config: ConnectionConfig, *, now: float | None = None) -> str:
    """The signed RS256 assertion for the JWT bearer flow."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": config.client_id,
        "sub": config.username,
        "aud": jwt_audience(config.login_url),
        "exp": issued + JWT_LIFETIME_S,
    }
    try:
        return jwt.encode(claims, config.private_key or "", algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        raise SalesforceAuthError(
            "The private key cannot sign the JWT assertion.",
            code="invalid_private_key",
            setting=SETTING_PRIVATE_KEY,
            fix=f"Set {SETTING_PRIVATE_KEY} to the unencrypted PEM RSA private key whose "
            "certificate is uploaded to the connected app.",
        ) from None


@dataclass(frozen=True)
class TokenRequest:
    """What is posted to the token endpoint; ``repr`` hides the form (it holds secrets)."""

    url: str
    form: dict[str, str] = field(repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)


def build_token_request(config: ConnectionConfig, *, now: float | None = None) -> TokenRequest:
    """The token request for the configured flow (pure: no network)."""
    url = config.login_url.rstrip("/") + TOKEN_PATH
    if config.auth == "jwt":
        return TokenRequest(
            url, {"grant_type": JWT_GRANT, "assertion": jwt_assertion(config, now=now)}
        )
    if config.auth == "client_credentials":
        return TokenRequest(
            url,
            {"grant_type": "client_credentials"},
            (config.client_id or "", config.client_secret or ""),
        )
    if config.auth == "password":
        return TokenRequest(
            url,
            {
                "grant_type": "password",
                "client_id": config.client_id or "",
                "client_secret": config.client_secret or "",
                "username": config.username or "",
                "password": config.password or "",
            },
        )
    raise SalesforceAuthError(
        f"Unknown Salesforce auth kind {config.auth!r}.",
        code="invalid_auth_kind",
        setting=SETTING_AUTH,
        fix=f"Set {SETTING_AUTH} to jwt, client_credentials or password.",
    )


# -- response parsing -----------------------------------------------------------------


def parse_token_response(status: int, body: Any, *, auth: str, login_url: str) -> Token:
    """Turn a token-endpoint answer into a :class:`Token` or a clear error."""
    if status == 200 and isinstance(body, dict):
        access_token = body.get("access_token")
        instance_url = body.get("instance_url")
        if isinstance(access_token, str) and access_token and isinstance(instance_url, str):
            if not instance_url.startswith("https://"):
                raise SalesforceAuthError(
                    f"Salesforce returned a non-HTTPS instance URL ({instance_url}).",
                    code="invalid_instance_url",
                    setting=SETTING_LOGIN_URL,
                    fix=f"Check {SETTING_LOGIN_URL}: it must be your org's login host.",
                )
            return Token(
                access_token=access_token,
                instance_url=instance_url.rstrip("/"),
                identity_url=_str_or_none(body.get("id")),
                issued_at=_issued_at(body.get("issued_at")),
                scope=_str_or_none(body.get("scope")),
                token_type=str(body.get("token_type") or "Bearer"),
            )
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = body["error"]
        description = str(body.get("error_description") or "")[:_DESCRIPTION_MAX]
        raise _refusal(auth, error, description, status)
    raise SalesforceAuthError(
        f"{login_url}{TOKEN_PATH} did not answer like a Salesforce token endpoint (HTTP {status}).",
        code=f"HTTP_{status}",
        setting=SETTING_LOGIN_URL,
        fix=f"Set {SETTING_LOGIN_URL} to https://login.salesforce.com, "
        "https://test.salesforce.com or your My Domain URL (https://NAME.my.salesforce.com).",
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _issued_at(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


_APPROVAL_FIX = (
    "In Setup, open the connected app (Manage → Edit Policies), set Permitted Users to "
    "'Admin approved users are pre-authorized' and add the integration user's profile or "
    "permission set; or have the user approve the app once."
)


def _refusal(auth: str, error: str, description: str, status: int) -> Exception:
    """Map an OAuth ``error``/``error_description`` to the setting an admin must fix."""
    text = f"Salesforce refused the {auth} login: {error}"
    if description:
        text += f" ({description})"
    text += "."
    desc = description.lower()
    if error == "rate_limit_exceeded":
        return SalesforceAuthUnavailable(
            text + " Too many logins; optsync retries later.", code=error
        )
    setting: str | None
    if error == "invalid_client_id":
        setting, fix = (
            SETTING_CLIENT_ID,
            (
                f"Set {SETTING_CLIENT_ID} to the connected app's consumer key (Setup → App "
                "Manager → the app → View → Manage Consumer Details)."
            ),
        )
    elif error == "invalid_client":
        if "secret" in desc or auth != "jwt":
            setting, fix = (
                SETTING_CLIENT_SECRET,
                (
                    f"Set {SETTING_CLIENT_SECRET} to the connected app's consumer secret "
                    f"(and {SETTING_CLIENT_ID} to its consumer key)."
                ),
            )
        else:
            setting, fix = SETTING_CLIENT_ID, f"Check {SETTING_CLIENT_ID}."
    elif error == "unsupported_grant_type":
        setting, fix = (
            SETTING_AUTH,
            (
                f"Check {SETTING_AUTH}, and enable this OAuth flow in the connected app "
                "(for client_credentials also set a Run As user)."
            ),
        )
    elif error == "inactive_user":
        setting, fix = (
            SETTING_USERNAME,
            (
                "Reactivate the integration user in Setup → Users, or set "
                f"{SETTING_USERNAME} to an active user."
            ),
        )
    elif error == "inactive_org":
        setting, fix = (
            SETTING_LOGIN_URL,
            (f"The org is locked, deleted or expired; check {SETTING_LOGIN_URL}."),
        )
    elif error == "invalid_grant":
        setting, fix = _invalid_grant(auth, desc)
    else:
        setting, fix = (
            SETTING_AUTH,
            (f"Check {SETTING_AUTH} and the connected app's OAuth settings."),
        )
    return SalesforceAuthError(text, code=error, setting=setting, fix=fix)


def _invalid_grant(auth: str, desc: str) -> tuple[str | None, str]:
    if "audience" in desc:
        return SETTING_LOGIN_URL, (
            f"Set {SETTING_LOGIN_URL} to https://login.salesforce.com (production), "
            "https://test.salesforce.com (sandbox) or your My Domain URL."
        )
    if "approved" in desc or "not pre-authorized" in desc:
        return None, _APPROVAL_FIX
    if "expired" in desc and auth == "jwt":
        return None, (
            "The JWT was already expired when Salesforce checked it: synchronise this "
            "machine's clock (NTP)."
        )
    if auth == "jwt":
        if "user" in desc:
            return SETTING_USERNAME, (
                f"Set {SETTING_USERNAME} to the integration user's exact Salesforce username."
            )
        return SETTING_PRIVATE_KEY, (
            f"Set {SETTING_PRIVATE_KEY} to the private key of the certificate uploaded to "
            f"the connected app, {SETTING_USERNAME} to the integration user and "
            f"{SETTING_CLIENT_ID} to the app's consumer key."
        )
    if auth == "client_credentials":
        return None, (
            "In the connected app, enable the Client Credentials Flow and choose a Run As "
            f"user; use your My Domain URL as {SETTING_LOGIN_URL}."
        )
    return SETTING_PASSWORD, (
        f"Check {SETTING_USERNAME} and {SETTING_PASSWORD} (password followed by the "
        "security token unless the login IP is trusted), and that 'Allow OAuth "
        "Username-Password Flows' is on in Setup → OAuth and OpenID Connect Settings."
    )


# -- the network part -----------------------------------------------------------------


Sleeper = Callable[[float], None]


def backoff_delay(attempt: int, *, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the ``attempt``-th retry (1-based)."""
    cap = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** (attempt - 1)))
    return (rng or random).uniform(cap / 2, cap)


def fetch_token(
    config: ConnectionConfig,
    session: requests.Session,
    *,
    attempts: int = MAX_ATTEMPTS,
    sleep: Sleeper = time.sleep,
) -> Token:
    """Mint an access token; retry transient failures, raise clear errors otherwise."""
    last: str = ""
    for attempt in range(1, attempts + 1):
        request = build_token_request(config)
        try:
            resp = session.post(
                request.url,
                data=request.form,
                auth=request.basic_auth,
                headers={"Accept": "application/json"},
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise SalesforceAuthError(
                f"The TLS certificate of {config.login_url} is not trusted.",
                code="TLS_ERROR",
                setting=SETTING_CA_BUNDLE,
                fix=f"Set {SETTING_CA_BUNDLE} to the CA bundle that signed it (the "
                "emulator prints its own), or check the login URL.",
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            last = f"{type(exc).__name__} while calling {request.url}"
        except requests.exceptions.InvalidURL:
            raise SalesforceAuthError(
                f"The login URL {config.login_url!r} is not a valid URL.",
                code="INVALID_URL",
                setting=SETTING_LOGIN_URL,
                fix=f"Set {SETTING_LOGIN_URL} to e.g. https://login.salesforce.com.",
            ) from None
        else:
            if resp.status_code >= 500 or resp.status_code in (408, 429):
                last = f"HTTP {resp.status_code} from {request.url}"
            else:
                try:
                    body: Any = resp.json()
                except ValueError:
                    body = None
                return parse_token_response(
                    resp.status_code, body, auth=config.auth, login_url=config.login_url
                )
        if attempt < attempts:
            sleep(backoff_delay(attempt))
    raise SalesforceAuthUnavailable(
        f"Could not get a Salesforce access token after {attempts} attempts ({last}). "
        f"Check the network path to {config.login_url} and {SETTING_LOGIN_URL}.",
        code="TOKEN_ENDPOINT_UNAVAILABLE",
    )
