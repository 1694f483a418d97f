"""The ``requests`` session every Salesforce call goes through.

Two traps of plain ``requests`` are closed here, once:

* **No default timeout.** ``requests`` waits forever unless told otherwise, and
  simple-salesforce passes no timeout, so a stalled connection would hang a worker.
  :class:`SalesforceHTTP` applies ``(connect, read)`` = (10 s, 60 s) to every request that
  does not set its own.
* **The environment overriding the trusted CA.** With ``trust_env`` on, requests lets
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` replace ``Session.verify`` for every
  request that does not pass ``verify=``. This machine (and many CI images) export
  those, so a configured CA bundle (the emulator's, a corporate TLS proxy's) would
  silently be ignored. Turning ``trust_env`` off would fix that but also drop
  ``HTTPS_PROXY`` / ``NO_PROXY``, which real deployments need. So
  :meth:`SalesforceHTTP.merge_environment_settings` keeps the session's own ``verify``
  when one is configured, and lets the environment supply everything else.

It also remembers, per thread, the ``Retry-After`` of the last answer it received, so
the gateway can honour it when it backs off (simple-salesforce's errors do not carry
response headers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
Timeout = tuple[float, float]
DEFAULT_TIMEOUT: Timeout = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT)
USER_AGENT = "optsync (+https://github.com/optsync/optsync)"
CALL_OPTIONS = "client=optsync"
"""``Sforce-Call-Options``: Salesforce records the client in each change's ``changeOrigin``."""


class SalesforceHTTP(requests.Session):
    """A ``requests.Session`` with a default timeout and a CA trust the environment cannot
    override."""

    def __init__(self, *, timeout: Timeout = DEFAULT_TIMEOUT, ca_bundle: str | None = None):
        super().__init__()
        self.timeout: Timeout = timeout
        self.pinned_verify = ca_bundle is not None
        if ca_bundle is not None:
            self.verify = ca_bundle
        self.headers["User-Agent"] = USER_AGENT
        # every optsync request (REST, composite, Bulk 2.0) names its client, so the
        # change events of optsync's own writes carry client=optsync and are skipped
        self.headers["Sforce-Call-Options"] = CALL_OPTIONS
        self._seen = threading.local()

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Every request gets the session's timeout unless the caller passes one."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        self._seen.retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self._seen.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response

    def last_retry_after(self) -> float | None:
        """Seconds the last answer received by this thread asked to wait, if it did."""
        value: float | None = getattr(self._seen, "retry_after", None)
        return value

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Any,
        stream: bool | None,
        verify: Any,
        cert: Any,
    ) -> Any:
        """Take proxies from the environment, but keep a configured CA bundle.

        ``requests`` consults ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` only when the
        per-request ``verify`` is ``None`` or ``True``; passing the session's own bundle
        as the per-request value is exactly "the configured CA wins". A per-request
        ``verify=`` given by a caller still takes precedence, as usual.
        """
        if self.pinned_verify and (verify is None or verify is True):
            verify = self.verify
        return super().merge_environment_settings(url, proxies or {}, stream, verify, cert)


def build_session(
    *, ca_bundle: str | Path | None = None, timeout: Timeout = DEFAULT_TIMEOUT
) -> SalesforceHTTP:
    """The session for one Salesforce connection (token requests and API calls alike)."""
    return SalesforceHTTP(timeout=timeout, ca_bundle=str(ca_bundle) if ca_bundle else None)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def env_proxies(session: requests.Session, url: str) -> Mapping[str, str]:
    """The proxies ``session`` would use for ``url`` (for diagnostics and tests)."""
    settings = session.merge_environment_settings(url, {}, None, None, None)
    return dict(settings["proxies"])
