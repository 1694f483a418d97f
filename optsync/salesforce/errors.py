"""Salesforce failures, named for what the caller must do.

* :class:`SalesforceAuthError` — the token endpoint refused us; a setting is wrong
  (client id, secret, key, user, login URL) and retrying will not help until an admin
  changes it. The message names the setting.
* :class:`SalesforceAuthUnavailable` — the token endpoint could not be reached or
  answered with a server error, even after a few quick retries; try again later.
* :class:`SalesforceCallError` — one API call failed; ``classification`` (from the
  shared failure table) says whether to retry, renew, follow or stop.

Messages never contain secrets: only Salesforce's own error text, setting names and
URLs.
"""

from __future__ import annotations

from optsync.domain.failures import Classification, Outcome
from optsync.errors import OptsyncError, PermanentError, RetryableError


class SalesforceAuthError(PermanentError):
    """The token request was refused; ``setting`` names what to change."""

    def __init__(self, message: str, *, code: str, setting: str | None, fix: str):
        super().__init__(message, code=code, fix=fix)
        self.setting = setting

    def __str__(self) -> str:
        return f"{self.args[0]} {self.fix}" if self.fix else str(self.args[0])


class SalesforceAuthUnavailable(RetryableError):
    """The token endpoint failed transiently (network, timeout, 5xx) after retries."""


class SalesforceCallError(OptsyncError):
    """A Salesforce API call failed as a whole (not one record of a batch).

    ``status`` is the HTTP status, or ``None`` when no response arrived (timeout,
    connection error). ``classification.outcome`` tells the caller what to do next;
    ``retry_after_s`` is the answer's ``Retry-After``, when it had one.
    """

    def __init__(
        self,
        classification: Classification,
        status: int | None,
        message: str,
        *,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.classification = classification
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def code(self) -> str:
        return self.classification.code

    @property
    def outcome(self) -> Outcome:
        return self.classification.outcome

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"Salesforce call failed ({where}, {self.code}): {self.message}"
