"""Pytest plugin: a Salesforce emulator for the whole session, reset between tests.

Register with ``pytest_plugins = ["tests.fixtures_emulator"]`` (or ``-p tests.fixtures_emulator``).

* ``emulator`` (session): one emulator in memory mode on a free port, data dir under
  pytest's temporary directory. Starting it once keeps the suite fast.
* ``emu`` (function): the same emulator after ``POST /__emulator__/reset``, which empties
  the org, restores default field-level security and settings and zeroes the counters,
  so every test starts from a known org.
* ``emu_settings``: ``emu`` with the ``OPTSYNC_SF_*`` environment pointing at it, for
  tests that run the CLI.
* ``sf``: a ready simple-salesforce client (client-credentials token, CA trusted through
  a ``requests.Session`` with ``trust_env=False``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optsync.cli.emulator import settings_env as _settings_env
from optsync.emulator import Emulator, EmulatorOptions, run_emulator


def settings_env(emu: Emulator) -> dict[str, str]:
    """The ``OPTSYNC_SF_*`` environment that points optsync at ``emu``."""
    return _settings_env(emu.summary())


def emulator_options(data_dir: Path) -> EmulatorOptions:
    """A test emulator: in memory, on a free port, no latency or faults."""
    return EmulatorOptions(
        data_dir=data_dir,
        host="127.0.0.1",
        port=0,
        memory=True,
        seed=0,
        latency_ms=0,
        jitter_ms=0,
        fault_rate=0.0,
        daily_api_limit=1_000_000,
        sales_opt_out=True,
        token_lifetime_s=7200,
    )


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with run_emulator(emulator_options(tmp_path_factory.mktemp("emulator-data"))) as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


@pytest.fixture
def emu_settings(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The (reset) emulator, with optsync's ``OPTSYNC_SF_*`` settings pointing at it."""
    for name, value in settings_env(emu).items():
        monkeypatch.setenv(name, value)
    return emu


@pytest.fixture
def sf(emu: Emulator) -> Any:
    return emu.salesforce()
