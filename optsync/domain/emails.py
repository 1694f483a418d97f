"""Email address normalisation and validation (syntax only; no DNS, no I/O).

The normal form keeps the local part as written (some providers treat it as
case-sensitive) but lower-cases it too, because in practice every sending tool and
Salesforce compare addresses case-insensitively; the domain is IDNA-normalised.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidEmail(ValueError):
    """The value is not a usable email address; ``str()`` says why and how to fix it, as
    one sentence in optsync's words (callers prefix the field: ``email: ...``)."""


MAX_LENGTH = 254
FIX = "Write it as name@domain, e.g. ann@example.com."
SHOWN = 60  # characters of a bad value repeated in the message

# email-validator's most common reasons, in optsync's words; any other reason is kept,
# lower-cased, after "is not an email address:".
_REASONS = {
    "An email address must have an @-sign.": "it has no @-sign",
    "There must be something before the @-sign.": "nothing comes before the @-sign",
    "There must be something after the @-sign.": "nothing comes after the @-sign",
    "The part after the @-sign is not valid. It should have a period.": (
        "the part after the @-sign has no dot"
    ),
}


def _invalid(raw: str, reason: str) -> InvalidEmail:
    shown = raw if len(raw) <= SHOWN else raw[: SHOWN - 1] + "…"
    detail = _REASONS.get(reason) or (reason[:1].lower() + reason[1:]).rstrip(".")
    return InvalidEmail(f"'{shown}' is not an email address: {detail}. {FIX}")


def normalise_email(value: str) -> str:
    """Return the canonical form of ``value`` or raise :class:`InvalidEmail`."""
    raw = (value or "").strip()
    if not raw:
        raise InvalidEmail(f"the email address is empty. {FIX}")
    if len(raw) > MAX_LENGTH:
        raise _invalid(raw, f"it is longer than {MAX_LENGTH} characters")
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise _invalid(raw, str(exc)) from None
    return result.normalized.lower()


def mask_email(email: str) -> str:
    """A form safe for logs: ``a***@example.com``."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
