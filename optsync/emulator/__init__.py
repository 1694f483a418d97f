"""A local Salesforce org over HTTPS that an unmodified simple-salesforce client can use.

It speaks the REST and Bulk API 2.0 wire protocol described in
``docs/salesforce-api.md`` (OAuth token endpoint, describe, records, SOQL queries,
sObject Collections, limits, Bulk ingest and query jobs) and adds ``/__emulator__/``
control endpoints for tests, demos and benchmarks. It stands alone: nothing here
imports optsync's store, services or settings.
"""

from optsync.emulator.server import Emulator, EmulatorOptions, run_emulator

__all__ = ["Emulator", "EmulatorOptions", "run_emulator"]
