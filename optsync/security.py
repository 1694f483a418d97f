"""Secrets handling: password hashes, API tokens, encryption of stored credentials.

* Passwords: argon2id (argon2-cffi), the current OWASP recommendation.
* API tokens: 32 random bytes shown once; only their SHA-256 is stored (a token has full
  entropy, so a slow hash buys nothing and would slow every API call).
* Stored Salesforce secrets: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from
  ``OPTSYNC_SECRET_KEY`` by HKDF; ``optsync secret rotate`` re-seals them under a new key
  (:mod:`optsync.services.secret_rotation`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from optsync.errors import ConfigError

_hasher = PasswordHasher()

TOKEN_PREFIX = "osk_"  # noqa: S105 (a public marker, not a secret)
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> tuple[str, str]:
    """A new bearer token and the hash to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_api_token(token)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def derive_key(secret_key: str, purpose: str, length: int = 32) -> bytes:
    """A purpose-specific key from the one secret key (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=b"optsync", info=purpose.encode()
    ).derive(secret_key.encode())


def new_session_epoch() -> str:
    """A user's session epoch: 128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def fernet_for(secret_key: str, purpose: str) -> Fernet:
    """A Fernet sealed with a purpose-specific key derived from the secret key."""
    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, purpose)))


class SecretBox:
    """Encrypts a small JSON object of secrets for storage in the database."""

    PURPOSE = "stored-credentials"

    def __init__(self, secret_key: str) -> None:
        self._fernet = fernet_for(secret_key, self.PURPOSE)

    def seal(self, values: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, blob: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            raise ConfigError(
                "The stored Salesforce credentials cannot be decrypted with this secret key.",
                field="OPTSYNC_SECRET_KEY",
                fix="Restore the secret key they were stored with, or run "
                "`optsync salesforce connect` again.",
            ) from None
        return data


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
