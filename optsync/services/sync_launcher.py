"""Starting a sync run from a web request: "Sync now", "Dry run", ``POST /api/v1/sync/runs``.

The run row is created in the request (so the caller gets its id at once, and a second
request meets the database's one-running-run index as :class:`RunInProgress`), then the
run itself is carried out in a background thread of this process. Its progress is kept
in memory for the status page; the phases it finished are also in the stored report,
so another web process can still show how far it got.
"""

from __future__ import annotations

import logging
import threading

from optsync.bootstrap import Context
from optsync.salesforce.gateway import Profile, open_gateway
from optsync.services.sync_run import SyncRunner, start_run

log = logging.getLogger(__name__)


class SyncLauncher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._progress: dict[int, tuple[str, int, int | None]] = {}
        self._lock = threading.Lock()

    def start(self, *, dry_run: bool, full: bool = False) -> int:
        """Create the run and start carrying it out; returns its id at once. ``full``:
        re-read every record into the mirror."""
        run_id = start_run(
            self.ctx.db, trigger="manual", dry_run=dry_run, now=self.ctx.clock(), full=full
        )
        thread = threading.Thread(
            target=self._carry_out, args=(run_id,), name=f"optsync-sync-{run_id}", daemon=True
        )
        thread.start()
        return run_id

    def progress(self, run_id: int) -> tuple[str, int, int | None] | None:
        with self._lock:
            return self._progress.get(run_id)

    def _carry_out(self, run_id: int) -> None:
        def report(phase: str, done: int, total: int | None) -> None:
            with self._lock:
                self._progress[run_id] = (phase, done, total)

        try:
            SyncRunner(
                self.ctx.db,
                run_id,
                lambda: open_gateway(self.ctx, Profile.JOB),
                clock=self.ctx.clock,
                progress=report,
            ).run()
        except Exception as exc:  # the runner has already marked the run failed
            log.error(
                "sync run ended with an unexpected %s",
                type(exc).__name__,
                extra={"run_id": run_id},
            )
        finally:
            with self._lock:
                self._progress.pop(run_id, None)
