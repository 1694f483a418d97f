"""Helpers for the Salesforce adapter tests against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optsync.emulator import Emulator
from optsync.salesforce.connection import ConnectionConfig
from optsync.salesforce.gateway import SalesforceGateway


def config_for(
    emu: Emulator,
    auth: str = "client_credentials",
    **changes: Any,
) -> ConnectionConfig:
    """A connection to the emulator with the given flow (all credentials filled in)."""
    values: dict[str, Any] = dict(
        auth=auth,
        login_url=emu.login_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        username=emu.username,
        password=emu.password,
        private_key=Path(emu.private_key_file).read_text(),
        api_version="62.0",
        ca_bundle=emu.ca_bundle,
    )
    values.update(changes)
    return ConnectionConfig(**values).validated()


@pytest.fixture
def gateway(emu: Emulator) -> Any:
    with SalesforceGateway(config_for(emu)) as gw:
        yield gw


def counters(emu: Emulator) -> dict[str, Any]:
    return dict(emu.control("GET", "counters"))
