"""Sending a notification: by email over SMTP, or as a signed JSON POST to a webhook.

Both are called with no database transaction open (the dispatcher reads, commits, sends,
then writes the outcome in a new transaction). Every call has a timeout; a failure raises
:class:`DeliveryError` with a sentence that says what failed and what to check, and never
contains a secret.

The webhook request carries ``X-Optsync-Event``, ``X-Optsync-Timestamp`` (Unix seconds)
and ``X-Optsync-Signature: sha256=<hex>``, the HMAC-SHA256 of ``timestamp + "." + body``
under the generated secret (:func:`optsync.domain.health.webhook_signature`). Connection
errors, timeouts, 429 and 5xx are retried ``retries`` times with exponential backoff
(0.5 s, 1 s, 2 s…); other answers are final. Redirects are not followed.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from optsync.domain.health import webhook_signature
from optsync.services.notifications.settings import NotificationSettingsView

SMTP_TIMEOUT_S = 15.0
WEBHOOK_BACKOFF_S = 0.5
USER_AGENT = "optsync-notifications/1"


class DeliveryError(Exception):
    """A channel could not deliver; ``str()`` is the sentence to show."""


def send_email(
    settings: NotificationSettingsView,
    password: str | None,
    subject: str,
    text: str,
    *,
    timeout: float = SMTP_TIMEOUT_S,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    host, port = settings.smtp_host or "", settings.smtp_port
    where = f"{host}:{port}"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.email_from or ""
    message["To"] = ", ".join(settings.email_to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="optsync")
    message.set_content(text)
    context = tls_context or ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=context)
            if settings.smtp_username and password:
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"email: {where} refused the username or password ({exc.smtp_code}). "
            "Check the SMTP username and password."
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(
            f"email: {where} does not offer STARTTLS. Choose tls (port 465) or ask the "
            "mail administrator."
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"email: {where} refused {len(exc.recipients)} recipient(s). Check the To list."
        ) from None
    except smtplib.SMTPResponseException as exc:
        reason = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        raise DeliveryError(f"email: {where} answered {exc.smtp_code} {reason[:200]}.") from None
    except ssl.SSLError as exc:
        raise DeliveryError(
            f"email: the TLS handshake with {where} failed ({exc.reason or exc}). Check the "
            "security setting and port (starttls: usually 587; tls: 465)."
        ) from None
    except TimeoutError:
        raise DeliveryError(
            f"email: {where} did not answer within {timeout:.0f} s. Check the host, port "
            "and firewall."
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            f"email: cannot reach {where} ({type(exc).__name__}: {exc}). Check the host and "
            "port, and that the server accepts connections from here."
        ) from None


Sleep = Callable[[float], None]


def send_webhook(
    settings: NotificationSettingsView,
    secret: str,
    event: str,
    body: dict[str, Any],
    *,
    sleep: Sleep = time.sleep,
    now: Callable[[], float] = time.time,
    transport: httpx.BaseTransport | None = None,
) -> None:
    url = settings.webhook_url or ""
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    attempts = settings.webhook_retries + 1
    last = ""
    with httpx.Client(
        timeout=settings.webhook_timeout_s, follow_redirects=False, transport=transport
    ) as client:
        for attempt in range(attempts):
            if attempt:
                sleep(WEBHOOK_BACKOFF_S * 2 ** (attempt - 1))
            stamp = str(int(now()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Optsync-Event": event,
                "X-Optsync-Timestamp": stamp,
                "X-Optsync-Signature": webhook_signature(secret, stamp, data),
            }
            try:
                response = client.post(url, content=data, headers=headers)
            except httpx.TimeoutException:
                last = f"no answer within {settings.webhook_timeout_s} s"
                continue
            except httpx.HTTPError as exc:
                last = f"cannot connect ({type(exc).__name__})"
                continue
            if 200 <= response.status_code < 300:
                return
            last = f"answered HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break
    raise DeliveryError(
        f"webhook: {_safe(url)} {last} after {attempt + 1} attempt(s). Check the URL and "
        "that the receiver answers 2xx."
    )


def _safe(url: str) -> str:
    """The URL without its query (a token in a query string is a secret too)."""
    return url.split("?", 1)[0]
