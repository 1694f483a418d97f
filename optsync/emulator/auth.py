"""The connected app, the integration user and the OAuth token endpoint.

Credentials and the JWT key pair are generated once into ``<data dir>/emulator/`` so the
values printed at start-up keep working across restarts (clients store them). Access
tokens live in memory only: a restarted org, like a real one after a session purge,
answers old tokens with ``INVALID_SESSION_ID`` and clients must log in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from optsync.emulator.schema import ORG_ID, USER_ID
from optsync.emulator.tls import write_private

__all__ = ["ORG_ID", "USER_ID", "Authority", "Credentials", "TokenError", "basic_auth"]
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PUBLIC_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


@dataclass(frozen=True)
class Credentials:
    """What a client needs to log in; stable for the life of the data dir."""

    client_id: str
    client_secret: str
    username: str
    password: str
    refresh_token: str
    private_key_file: Path
    certificate_file: Path

    @classmethod
    def load_or_create(cls, directory: Path) -> Credentials:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / "credentials.json"
        key_file = directory / "jwt-private-key.pem"
        cert_file = directory / "jwt-cert.pem"
        if not (key_file.exists() and cert_file.exists()):
            _make_jwt_keys(key_file, cert_file)
        if path.exists():
            data = json.loads(path.read_text())
        else:
            data = {
                # Real consumer keys start with 3MVG9 and are 85 characters long.
                "client_id": "3MVG9" + secrets.token_urlsafe(60)[:80].replace("-", "A"),
                "client_secret": secrets.token_hex(32).upper(),
                "username": "integration@optsync-emulator.example",
                "password": secrets.token_urlsafe(18),
                "refresh_token": "5Aep861" + secrets.token_urlsafe(64),
            }
            write_private(path, json.dumps(data, indent=2).encode())
        return cls(private_key_file=key_file, certificate_file=cert_file, **data)

    def public_key(self) -> Any:
        cert = x509.load_pem_x509_certificate(self.certificate_file.read_bytes())
        return cert.public_key()


def _make_jwt_keys(key_file: Path, cert_file: Path) -> None:
    """An RSA key for the JWT flow and the self-signed certificate 'uploaded' to the app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "optsync connected app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class TokenError(Exception):
    """An OAuth failure: ``{"error","error_description"}`` with an HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class Authority:
    """Issues and checks access tokens for the one connected app and integration user."""

    def __init__(self, creds: Credentials, *, token_lifetime_s: float):
        self.creds = creds
        self.token_lifetime_s = token_lifetime_s
        self._sessions: dict[str, float] = {}
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()
        self._public_key = creds.public_key()

    # ------------------------------------------------------------- sessions
    def valid(self, token: str) -> bool:
        """True while the token was issued here, is not expired and was not revoked."""
        with self._lock:
            expires = self._sessions.get(token)
            if expires is None:
                return False
            if expires <= time.time():
                del self._sessions[token]
                return False
            return True

    def session(self, token: str) -> tuple[float, float] | None:
        """``(issued_at, expires_at)`` in epoch seconds of a valid token, else None."""
        if not self.valid(token):
            return None
        with self._lock:
            expires = self._sessions.get(token)
            issued = self._issued.get(token)
        if expires is None or issued is None:
            return None
        return issued, expires

    def revoke(self, token: str) -> bool:
        """``/services/oauth2/revoke``: the access token stops working (True if it was one).

        Revoking the refresh token is accepted but, as the one the emulator prints must
        keep working across restarts, it stays valid.
        """
        with self._lock:
            self._issued.pop(token, None)
            return self._sessions.pop(token, None) is not None

    def expire_all(self) -> int:
        """Invalidate every issued access token (clients must log in again)."""
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            self._issued.clear()
            return n

    def _issue(
        self,
        instance_url: str,
        login_url: str,
        *,
        refresh: bool = False,
    ) -> dict[str, Any]:
        token = f"{ORG_ID[:15]}!AQ{secrets.token_urlsafe(72)}"
        now = time.time()
        with self._lock:
            if len(self._sessions) > 10_000:
                self._sessions = {t: e for t, e in self._sessions.items() if e > now}
                self._issued = {t: i for t, i in self._issued.items() if t in self._sessions}
            self._sessions[token] = now + self.token_lifetime_s
            self._issued[token] = now
        issued_at = str(int(now * 1000))
        identity = f"{login_url}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(
            hmac.new(
                self.creds.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
            ).digest()
        ).decode()
        body: dict[str, Any] = {
            "access_token": token,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }
        if refresh:
            body["refresh_token"] = self.creds.refresh_token
        return body

    # ------------------------------------------------------------- token endpoint
    def token(
        self, form: dict[str, str], authorization: str | None, *, instance_url: str, login_url: str
    ) -> dict[str, Any]:
        """Answer ``POST /services/oauth2/token``; raises ``TokenError`` on any failure."""
        grant = form.get("grant_type")
        if not grant:
            raise TokenError("invalid_request", "grant type not supported")
        basic_id, basic_secret = basic_auth(authorization)
        if grant == "password":
            self._check_client(form.get("client_id"), form.get("client_secret"))
            if form.get("username") != self.creds.username or not hmac.compare_digest(
                form.get("password", ""), self.creds.password
            ):
                raise TokenError("invalid_grant", "authentication failure")
            return self._issue(instance_url, login_url)
        if grant == "client_credentials":
            cid = basic_id if basic_id is not None else form.get("client_id")
            secret = basic_secret if basic_id is not None else form.get("client_secret")
            self._check_client(cid, secret)
            return self._issue(instance_url, login_url)
        if grant == "refresh_token":
            cid = basic_id if basic_id is not None else form.get("client_id")
            secret = basic_secret if basic_id is not None else form.get("client_secret")
            if cid != self.creds.client_id:
                raise TokenError("invalid_client_id", "client identifier invalid")
            if secret is not None and not hmac.compare_digest(secret, self.creds.client_secret):
                raise TokenError("invalid_client", "invalid client credentials")
            if not hmac.compare_digest(form.get("refresh_token", ""), self.creds.refresh_token):
                raise TokenError("invalid_grant", "expired access/refresh token")
            return self._issue(instance_url, login_url)
        if grant == JWT_GRANT:
            self._check_jwt(form.get("assertion", ""), login_url, instance_url)
            return self._issue(instance_url, login_url)
        raise TokenError("unsupported_grant_type", "grant type not supported")

    def _check_client(self, client_id: str | None, secret: str | None) -> None:
        if client_id != self.creds.client_id:
            raise TokenError("invalid_client_id", "client identifier invalid")
        if secret is None or not hmac.compare_digest(secret, self.creds.client_secret):
            raise TokenError("invalid_client", "invalid client credentials")

    def _check_jwt(self, assertion: str, login_url: str, instance_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise TokenError("invalid_grant", "invalid assertion") from None
        if header.get("alg") != "RS256":
            raise TokenError("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise TokenError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self.creds.client_id:
            raise TokenError("invalid_client_id", "client identifier invalid")
        audiences = {a.rstrip("/") for a in (*PUBLIC_AUDIENCES, login_url, instance_url)}
        audiences |= {a.replace("127.0.0.1", "localhost") for a in audiences}
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in auds):
            raise TokenError("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        try:
            exp_value = float(exp) if isinstance(exp, int | float | str) else None
        except ValueError:
            exp_value = None
        if exp_value is None or isinstance(exp, bool):
            raise TokenError("invalid_grant", "invalid assertion")
        if exp_value < time.time() - 180:  # Salesforce allows a few minutes of clock skew
            raise TokenError("invalid_grant", "expired authorization code")
        if claims.get("sub") != self.creds.username:
            raise TokenError("invalid_grant", "user hasn't approved this consumer")


def basic_auth(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None, None
    try:
        raw = base64.b64decode(authorization.split(" ", 1)[1].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        raise TokenError("invalid_client", "invalid client credentials", 401) from None
    cid, _, secret = raw.partition(":")
    return cid, secret
