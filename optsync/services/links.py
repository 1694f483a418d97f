"""Signed unsubscribe links and the ``List-Unsubscribe`` headers that carry them.

A link token names a person by id and is signed (HMAC-SHA256) with a key derived from
``OPTSYNC_SECRET_KEY`` for this purpose only, so it can be neither forged nor pointed at
someone else, and it does not carry the address: a link copied into a ticket or a log
does not disclose who it belongs to. Tokens never expire on purpose: CAN-SPAM and the
mailbox providers expect an unsubscribe link in an old email to keep working, and so
does rotating the secret key (``optsync secret rotate``): the link key of every retired
secret key is kept in ``retired_link_keys`` (sealed under the current key), and a link is
verified with the current key first, then with the retired ones. The retired keys are
read from the database once per process, at the first link the current key does not
verify (a restart picks up a rotation).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.errors import ConfigError, UsageError
from optsync.security import derive_key, fernet_for
from optsync.services.optouts import get_or_create_person, parse_email
from optsync.settings import Settings
from optsync.store.db import Database
from optsync.store.models import RetiredLinkKey

RetiredKeys = Callable[[], Sequence[bytes]]
log = logging.getLogger("optsync.links")

PURPOSE = "unsubscribe-links"
SALT = "optsync.unsubscribe.v1"
MAX_TOKEN_LENGTH = 200
ONE_CLICK = "List-Unsubscribe=One-Click"


UNDO_PURPOSE = "unsubscribe-undo"
UNDO_SALT = "optsync.unsubscribe-undo.v1"


class InvalidLinkToken(UsageError):
    """The token was not issued by this installation (forged, truncated, other key)."""


class InvalidUndoToken(UsageError):
    """The undo token was not issued here, or not for this link."""


@dataclass(frozen=True)
class UnsubscribeLink:
    """A person's unsubscribe URL and the email headers that advertise it."""

    person_id: int
    url: str

    @property
    def headers(self) -> dict[str, str]:
        """RFC 2369 ``List-Unsubscribe`` and RFC 8058 ``List-Unsubscribe-Post``."""
        return {"List-Unsubscribe": f"<{self.url}>", "List-Unsubscribe-Post": ONE_CLICK}

    def as_dict(self) -> dict[str, object]:
        return {"url": self.url, "headers": self.headers}


def link_key(secret_key: str) -> bytes:
    """The key links are signed with, derived from the secret key for this purpose only."""
    return derive_key(secret_key, PURPOSE)


def retired_key_box(secret_key: str) -> Fernet:
    """Seals the retired link keys under (a key derived from) the current secret key."""
    return fernet_for(secret_key, "retired-link-keys")


def load_retired_link_keys(session: Session, secret_key: str) -> list[bytes]:
    """The retired link keys, newest first, opened with the current secret key."""
    box = retired_key_box(secret_key)
    rows = session.scalars(select(RetiredLinkKey.sealed_key).order_by(RetiredLinkKey.id.desc()))
    try:
        return [box.decrypt(sealed) for sealed in rows]
    except InvalidToken:
        raise ConfigError(
            "The retired unsubscribe-link keys cannot be opened with this secret key.",
            field="OPTSYNC_SECRET_KEY",
            fix="Restore the secret key set by the last `optsync secret rotate`.",
        ) from None


def _serializer(key: bytes, salt: str = SALT) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


class UnsubscribeLinks:
    """Issues and reads link tokens for one installation (secret key + base URL).

    ``retired``: the link keys of retired secret keys, or a function that reads them
    (called once, at the first token the current key does not verify)."""

    def __init__(
        self, secret_key: str, base_url: str, *, retired: RetiredKeys | Sequence[bytes] = ()
    ) -> None:
        self._serializer = _serializer(link_key(secret_key))
        self._undo = _serializer(derive_key(secret_key, UNDO_PURPOSE), UNDO_SALT)
        self.base_url = base_url.rstrip("/")
        self._retired_source = retired
        self._retired: list[URLSafeSerializer] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> UnsubscribeLinks:
        """For issuing links (the current key only)."""
        return cls(settings.resolved_secret_key, settings.base_url)

    @classmethod
    def for_installation(cls, settings: Settings, db: Database) -> UnsubscribeLinks:
        """For reading links too: the retired keys come from the database."""
        secret_key = settings.resolved_secret_key

        def read() -> list[bytes]:
            with db.transaction() as session:
                return load_retired_link_keys(session, secret_key)

        return cls(secret_key, settings.base_url, retired=read)

    def _retired_serializers(self) -> list[URLSafeSerializer]:
        with self._lock:
            if self._retired is None:
                source = self._retired_source
                try:
                    keys = source() if callable(source) else source
                except ConfigError as exc:  # a wrong key: links of retired keys fail
                    log.error("retired link keys not usable: %s", exc, extra={"field": exc.field})
                    keys = []
                self._retired = [_serializer(key) for key in keys]
            return self._retired

    def _loads(self, token: str) -> object:
        try:
            return self._serializer.loads(token)
        except BadSignature:
            pass
        for serializer in self._retired_serializers():
            try:
                return serializer.loads(token)
            except BadSignature:
                continue
        raise BadSignature("not signed by this installation")

    def token(self, person_id: int) -> str:
        return str(self._serializer.dumps(person_id))

    def person_id(self, token: str) -> int:
        """The person a token names; ``InvalidLinkToken`` for anything not issued here."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLinkToken("token: this unsubscribe link is not valid.", field="token")
        try:
            value = self._loads(token)
        except BadSignature:
            raise InvalidLinkToken(
                "token: this unsubscribe link is not valid.", field="token"
            ) from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidLinkToken("token: this unsubscribe link is not valid.", field="token")
        return value

    def undo_token(self, person_id: int, ledger_id: int) -> str:
        """The credential of the confirmation page's Undo button: signed (its own key and
        salt, so neither kind of token passes for the other) and bound to the person and
        to the ledger entry of the unsubscribe it may undo. It carries no time: the undo
        window runs from that entry's time, which the database keeps."""
        return str(self._undo.dumps([person_id, ledger_id]))

    def undo_of(self, token: str, person_id: int) -> int:
        """The ledger entry an undo token of ``person_id`` names; ``InvalidUndoToken`` for
        anything else (forged, truncated, another person's). Only the current key: an undo
        lives for minutes, so a key rotation may end it."""
        invalid = InvalidUndoToken("undo: this undo button is not valid.", field="undo")
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise invalid
        try:
            value = self._undo.loads(token)
        except BadSignature:
            raise invalid from None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(type(v) is int and v >= 1 for v in value)
            or value[0] != person_id
        ):
            raise invalid
        return int(value[1])

    def for_person(self, person_id: int) -> UnsubscribeLink:
        return UnsubscribeLink(person_id, f"{self.base_url}/u/{self.token(person_id)}")

    def link_for(self, session: Session, email: str, now: datetime) -> UnsubscribeLink:
        """The link of ``email``'s person, created (not linked) if the address is new, so
        that a link can be put in an email before the person is known here."""
        person, _ = get_or_create_person(session, parse_email(email), now)
        return self.for_person(person.id)
