"""Pytest plugin: every test starts and ends with the logging configuration it found.

Commands that run a process (``serve``, ``worker``, ``sync run`` …) install optsync's log
handler on the root logger (``optsync.logs.configure``); run in-process by a test, that
would leak into every later test's stderr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    log_format = os.environ.get("OPTSYNC_LOG_FORMAT")
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    if log_format is None:
        os.environ.pop("OPTSYNC_LOG_FORMAT", None)  # set by `optsync --log-format …`
    else:
        os.environ["OPTSYNC_LOG_FORMAT"] = log_format
