"""Fixtures shared by the integration tests that talk to the emulator."""

from __future__ import annotations

import pytest

from optsync.salesforce.gateway import SalesforceGateway
from tests.integration.salesforce.conftest import config_for


@pytest.fixture
def sf_gateway(emu):
    """A gateway to the (reset) emulator over client credentials."""
    with SalesforceGateway(config_for(emu)) as gw:
        yield gw
