"""The org: everything one emulated Salesforce org owns, wired together once.

Routes receive this object instead of reaching for globals, so two emulators can run in
one process (tests start several) and the in-process API can reach the same state the
HTTP routes change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optsync.emulator.cursors import CursorRegistry

if TYPE_CHECKING:
    from optsync.emulator.auth import Authority, Credentials
    from optsync.emulator.bulk import JobManager
    from optsync.emulator.faults import Governor
    from optsync.emulator.pubsub.bus import EventBus
    from optsync.emulator.store import OrgStore


@dataclass
class Org:
    store: OrgStore
    authority: Authority
    governor: Governor
    jobs: JobManager
    credentials: Credentials
    instance_url: str = ""
    login_url: str = ""
    cursors: CursorRegistry = field(default_factory=CursorRegistry)
    pubsub: EventBus | None = None  # Change Data Capture events (emulator/pubsub)

    def reset(self) -> None:
        """Empty the org, forget usage and settings; keep the app, user and sessions."""
        self.jobs.reset()
        self.cursors.clear()
        self.store.reset()
        self.governor.reset()
        if self.pubsub is not None:
            self.pubsub.reset()
