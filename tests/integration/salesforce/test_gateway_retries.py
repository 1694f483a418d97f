"""Long jobs ride out transient failures: the gateway retries them with backoff."""

import pytest

from optsync.domain.retry import Jitter, RetryPolicy
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import SalesforceGateway
from tests.integration.salesforce.conftest import config_for


def test_transient_failures_are_retried_with_backoff(emu):
    emu.seed(contacts=50, opted_out_fraction=1.0)
    slept: list[float] = []
    with SalesforceGateway(config_for(emu), retries=8, sleep=slept.append) as gw:
        gw.connect()
        emu.settings(fault_rate=0.6)
        try:
            ids = [list(gw.query_opted_out("Contact", "HasOptedOutOfEmail")) for _ in range(5)]
        finally:
            emu.settings(fault_rate=0.0)
    assert all(len(batch) == 50 for batch in ids)
    assert slept and all(0 < s <= 8 for s in slept)  # backed off, within the cap


def test_without_retries_a_transient_failure_is_raised(emu):
    emu.seed(contacts=5, opted_out_fraction=1.0)
    with SalesforceGateway(config_for(emu)) as gw:
        gw.connect()
        emu.settings(fault_rate=1.0)
        try:
            with pytest.raises(SalesforceCallError) as exc:
                list(gw.query_opted_out("Contact", "HasOptedOutOfEmail"))
        finally:
            emu.settings(fault_rate=0.0)
    assert exc.value.outcome.value == "retry"


def test_a_retry_waits_at_least_the_answers_retry_after(emu):
    """The emulator answers its 503s with ``Retry-After: 1`` and its lock errors with no
    header: with a backoff of at most 0.02 s, a wait after a 503 is the server's 1 s and
    one after a lock error stays the backoff."""
    slept: list[float] = []
    with SalesforceGateway(config_for(emu), retries=30, sleep=slept.append) as gw:
        gw.retry_policy = RetryPolicy(base_s=0.01, cap_s=0.02, jitter=Jitter.EQUAL)
        gw.connect()
        emu.settings(fault_rate=1.0)
        try:
            with pytest.raises(SalesforceCallError):
                gw.limits()
        finally:
            emu.settings(fault_rate=0.0)
    assert len(slept) == 30
    assert all(s == 1.0 or s <= 0.02 for s in slept), slept
    assert 1.0 in slept and any(s <= 0.02 for s in slept), slept
