"""Keep credentials and addresses out of the access log.

Uvicorn logs every request line at info level; ours carry unsubscribe tokens in
``/u/{token}`` (a credential that also reveals its owner's address on GET) and addresses
in query strings (``/api/v1/persons?email=…``). This filter rewrites the logged path:
tokens become ``***`` and query strings are dropped.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"^(/u/)[^/?]+")


def redact_path(path: str) -> str:
    path = path.split("?", 1)[0]
    return _TOKEN.sub(r"\1***", path)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install() -> None:
    """Attach the filter to uvicorn's access logger (idempotent)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
