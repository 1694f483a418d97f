"""Helpers every command uses: consoles, the context, JSON output, progress bars."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def progress_bar(description: str) -> Progress:
    return Progress(
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
