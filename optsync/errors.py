"""Errors named for what the caller must do.

* ``UsageError``: the input or the configuration is wrong; tell the user which field and
  how to fix it. Nothing stored changes.
* ``RetryableError``: a transient failure (timeout, 5xx, lock); try again later with backoff.
* ``PermanentError``: retrying will not help; show it to an admin with the fix.
"""

from __future__ import annotations


class OptsyncError(Exception):
    """Base class of every error optsync raises on purpose."""


class UsageError(OptsyncError):
    """Bad input or configuration. ``field`` names what to change, ``fix`` says how."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.fix = fix

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text = f"{text} {self.fix}"
        return text


class NotFoundError(UsageError):
    """The thing asked for does not exist."""


class ConfigError(UsageError):
    """The configuration (environment, data dir, database URL) is unusable."""


class DatabaseNotMigratedError(UsageError):
    """The database schema is missing or older than this version of optsync."""


class RetryableError(OptsyncError):
    """A transient failure: try again later."""

    def __init__(self, message: str, *, code: str = "RETRYABLE"):
        super().__init__(message)
        self.code = code


class PermanentError(OptsyncError):
    """A failure retrying cannot fix."""

    def __init__(self, message: str, *, code: str = "PERMANENT", fix: str | None = None):
        super().__init__(message)
        self.code = code
        self.fix = fix
