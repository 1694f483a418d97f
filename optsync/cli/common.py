"""Helpers every command uses: consoles, the context, JSON output, progress bars."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from optsync.bootstrap import Context, open_context
from optsync.errors import UsageError
from optsync.services.persons import read_csv

console = Console()
err_console = Console(stderr=True)


@contextmanager
def app_context(*, require_schema: bool = True) -> Iterator[Context]:
    ctx = open_context(require_schema=require_schema)
    try:
        yield ctx
    finally:
        ctx.close()


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no Rich markup), for scripts."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


class _EndingProgress(Progress):
    """A progress display whose bars end full when the work ends.

    A bar's total is an estimate made before the work (lines in a file, a count from
    Salesforce); blank lines, quoted line breaks or records that changed meanwhile make it
    differ from what was done. When the block finishes without an error every bar is set
    to what it did, so a finished import never reads "4/5".
    """

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            for task in self.tasks:
                self.update(task.id, total=task.completed, completed=task.completed)
        super().__exit__(exc_type, exc_val, exc_tb)


def progress_bar(description: str) -> Progress:
    return _EndingProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def count_data_lines(path: Path) -> int:
    """Lines after the header, counted fast for the progress bar total."""
    try:
        with path.open("rb") as fh:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
            fh.seek(-1, 2) if path.stat().st_size else None
            if path.stat().st_size and fh.read(1) != b"\n":
                lines += 1
    except OSError:
        return 0
    return max(lines - 1, 0)


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """:func:`read_csv`, with the file opened and its header checked now, so that a file
    that cannot be read is one error line before any progress bar is drawn."""
    rows = read_csv(path)
    try:
        first = next(rows)
    except StopIteration:
        return iter(())
    return itertools.chain([first], rows)


def display_zone(ctx: Context) -> ZoneInfo:
    """The zone times are shown in for people: the sync settings' time zone."""
    from optsync.services.sync_settings import get_settings

    with ctx.db.transaction() as session:
        return ZoneInfo(get_settings(session).timezone)


def local_time(value: datetime | str | None, zone: ZoneInfo, *, short: bool = False) -> str:
    """``2026-11-24 13:00 CET`` (``11-24 13:00`` when ``short``); ``--json`` keeps UTC ISO."""
    if value is None:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = when.astimezone(zone)
    return local.strftime("%m-%d %H:%M") if short else local.strftime("%Y-%m-%d %H:%M %Z")


def optsync_command() -> str:
    """How to run this optsync from another shell: ``optsync`` when that name on PATH is
    this installation, else the full path of this installation's script (``make demo``
    runs ``.venv/bin/optsync``, and a new shell has no venv activated)."""
    mine = Path(sys.executable).parent / "optsync"
    if not mine.exists():
        return "optsync"
    found = shutil.which("optsync")
    if found and os.path.realpath(found) == os.path.realpath(mine):
        return "optsync"
    return str(mine)


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Refuse a port another process listens on, as one line, before anything starts
    (uvicorn would log a traceback-like error and exit after the worker started)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        reason = (
            "is already in use"
            if exc.errno == errno.EADDRINUSE
            else f"cannot be used ({exc.strerror})"
        )
        raise UsageError(
            f"{option} {port}: {host}:{port} {reason}.",
            field=option,
            fix=f"Stop the process that listens there, or pick another port with {option}.",
        ) from None
