"""The nightly unsubscribe sync: one bidirectional run, from setup check to report.

A run carries out, at scale and in SQL, the rules the pure planner
(:mod:`optsync.domain.planner`) states; the planner is the specification, and a property
test proves that the SQL diff (:mod:`optsync.store.sync_runs`) returns exactly its lists.
The phases:

1. **check** — the connection works and the selected field is a checkbox the integration
   user can update on Contact *and* Lead. A failed check fails the run with its fix
   before anything changes.
2. **fetch** — the ids of Contacts and (unconverted) Leads with the field set, streamed
   into the staging table in chunks: REST or a Bulk API 2.0 query job by the one volume
   rule (:mod:`optsync.salesforce.volume`, decided by a ``COUNT()`` per object).
3. **diff** — counted in SQL; a dry run stops here.
4. **pull** — persons whose record has the field set become unsubscribed (source
   ``salesforce``, one ledger entry each, no push: Salesforce already has it), chunk by
   chunk, each chunk one transaction.
5. **push** — unsubscribed persons whose record lacks the field get it set (REST or Bulk
   by volume). Converted Leads and merged records are followed by the engine shared with
   the pusher (:mod:`optsync.services.follow`) and the person is relinked; other
   failures are listed per record with the fix.

Modules: :mod:`.options` (knobs, errors), :mod:`.start` (the run row), :mod:`.runner`
(the phases), :mod:`.push_phase` (the push), :mod:`.report` (reports and history).
:mod:`optsync.services.sync_run` re-exports the public names.

Why it is safe to kill at any point: the only local writes are the pull chunks (state
and ledger commit together) and relinks; the remote writes only ever set a checkbox to
true. Re-running recomputes the diff from both sides, so a half-done run just leaves
less to do, and a run right after a complete one changes nothing. Re-subscribes are
never synced: nothing here clears an opt-out on either side.

One run at a time is enforced by the database (a partial unique index on running runs),
not by a lock in this process, so it holds across any number of workers. A run whose
worker died (no heartbeat for ``stale_after``, by the database's clock) is marked failed
by the next start; a runner that finds its run so reaped stops at once and writes
nothing more (:mod:`optsync.store.runs`).
"""
