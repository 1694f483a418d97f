"""Email address normalisation and validation (syntax only; no DNS, no I/O).

The normal form keeps the local part as written (some providers treat it as
case-sensitive) but lower-cases it too, because in practice every sending tool and
Salesforce compare addresses case-insensitively; the domain is IDNA-normalised.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidEmail(ValueError):
    """The value is not a usable email address; ``str()`` says why."""


MAX_LENGTH = 254


def normalise_email(value: str) -> str:
    """Return the canonical form of ``value`` or raise :class:`InvalidEmail`."""
    raw = (value or "").strip()
    if not raw:
        raise InvalidEmail("the email address is empty")
    if len(raw) > MAX_LENGTH:
        raise InvalidEmail(f"the email address is longer than {MAX_LENGTH} characters")
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return result.normalized.lower()


def mask_email(email: str) -> str:
    """A form safe for logs: ``a***@example.com``."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
