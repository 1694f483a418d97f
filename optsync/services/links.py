"""Signed unsubscribe links and the ``List-Unsubscribe`` headers that carry them.

A link token names a person by id and is signed (HMAC-SHA256) with a key derived from
``OPTSYNC_SECRET_KEY`` for this purpose only, so it can be neither forged nor pointed at
someone else, and it does not carry the address: a link copied into a ticket or a log
does not disclose who it belongs to. Tokens never expire on purpose: CAN-SPAM and the
mailbox providers expect an unsubscribe link in an old email to keep working. Rotating
the secret key invalidates every link sent before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from optsync.errors import UsageError
from optsync.security import derive_key
from optsync.services.optouts import get_or_create_person, parse_email
from optsync.settings import Settings

PURPOSE = "unsubscribe-links"
SALT = "optsync.unsubscribe.v1"
MAX_TOKEN_LENGTH = 200
ONE_CLICK = "List-Unsubscribe=One-Click"


class InvalidLinkToken(UsageError):
    """The token was not issued by this installation (forged, truncated, other key)."""


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


class UnsubscribeLinks:
    """Issues and reads link tokens for one installation (secret key + base URL)."""

    def __init__(self, secret_key: str, base_url: str) -> None:
        self._serializer = URLSafeSerializer(
            derive_key(secret_key, PURPOSE),
            salt=SALT,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> UnsubscribeLinks:
        return cls(settings.resolved_secret_key, settings.base_url)

    def token(self, person_id: int) -> str:
        return str(self._serializer.dumps(person_id))

    def person_id(self, token: str) -> int:
        """The person a token names; ``InvalidLinkToken`` for anything not issued here."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidLinkToken("token: this unsubscribe link is not valid.", field="token")
        try:
            value = self._serializer.loads(token)
        except BadSignature:
            raise InvalidLinkToken(
                "token: this unsubscribe link is not valid.", field="token"
            ) from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidLinkToken("token: this unsubscribe link is not valid.", field="token")
        return value

    def for_person(self, person_id: int) -> UnsubscribeLink:
        return UnsubscribeLink(person_id, f"{self.base_url}/u/{self.token(person_id)}")

    def link_for(self, session: Session, email: str, now: datetime) -> UnsubscribeLink:
        """The link of ``email``'s person, created (not linked) if the address is new, so
        that a link can be put in an email before the person is known here."""
        person, _ = get_or_create_person(session, parse_email(email), now)
        return self.for_person(person.id)
