"""One logging set-up for every command that runs a process (worker, serve, up, demo,
sync run): a sentence for people and fields for machines.

A log call names its facts with ``extra=``::

    log.warning("push failed", extra={"outbox_id": 7, "person_id": 3, "code": "FIELD_X"})

and the formatter writes them after the sentence, as logfmt (the default) or one JSON
object per line (``--log-format json`` / ``OPTSYNC_LOG_FORMAT=json``)::

    ts=2025-01-02T03:04:05.678Z level=warning logger=optsync.services.push
    msg="push failed" outbox_id=7 person_id=3 code=FIELD_X      (one line)

Whatever a call site passes, the output never carries an email address (``ann@x.org``
becomes ``***@x.org``) and fields named like a secret (``password``, ``token``,
``authorization``, ``secret``) are written as ``***``.

Uvicorn gets the same configuration (:func:`dict_config` is also its ``log_config``), so a
``serve --workers N`` process, started fresh by uvicorn, formats its lines the same way.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class LogFormatChoice(StrEnum):
    LOGFMT = "logfmt"
    JSON = "json"


FORMATS = tuple(f.value for f in LogFormatChoice)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with ANSI colours
}
_EMAIL = re.compile(r"[^\s@\"'<>()\[\],;:=]+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authorization|api_key|cookie", re.I)
_BARE = re.compile(r"[^\s=\"\\]+")  # fullmatch only


def mask(text: str) -> str:
    """The text with every email address reduced to its domain (``***@example.com``)."""
    return _EMAIL.sub(r"***@\1", text)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, secrets masked."""
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RESERVED or key.startswith("_"):
            continue
        out[key] = "***" if _SECRET_KEY.search(key) else value
    return out


def _plain(value: Any) -> Any:
    """A JSON-able value with addresses masked."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return mask(str(value))


class _Formatter(logging.Formatter):
    def parts(self, record: logging.LogRecord) -> dict[str, Any]:
        ts = datetime.fromtimestamp(record.created, UTC)
        parts: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in fields_of(record).items():
            parts[key if key not in parts else f"field_{key}"] = _plain(value)
        if record.exc_info:
            parts["exc"] = mask(self.formatException(record.exc_info))
        elif record.exc_text:
            parts["exc"] = mask(record.exc_text)
        return parts


class LogfmtFormatter(_Formatter):
    """``key=value`` pairs; values with spaces or quotes are quoted, dicts and lists JSON."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in self.parts(record).items())


class JsonFormatter(_Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.parts(record), default=str, ensure_ascii=False)


def _logfmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), default=str)
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (as Python's last-resort
    handler does), so a replaced or captured stderr never leaves it writing to a closed
    stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def dict_config(log_format: str = "logfmt", *, verbose: bool = False) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` for a process; also uvicorn's ``log_config``."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    formatter = LogfmtFormatter if log_format == "logfmt" else JsonFormatter
    level = "DEBUG" if verbose else "INFO"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"optsync": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"stderr": {"()": f"{__name__}.StderrHandler", "formatter": "optsync"}},
        "root": {"level": level, "handlers": ["stderr"]},
        # uvicorn's loggers write through the root handler, not their own
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(log_format: str = "logfmt", *, verbose: bool = False) -> None:
    """Install the handler and formatter on the root logger (replacing earlier ones)."""
    logging.config.dictConfig(dict_config(log_format, verbose=verbose))
