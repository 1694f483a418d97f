from datetime import UTC, datetime

import pytest

from optsync.domain.optout import (
    EventKind,
    OptOutState,
    ReasonRequired,
    Source,
    resubscribe,
    unsubscribe,
)

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_unsubscribe_changes_state_and_yields_one_event():
    d = unsubscribe(
        OptOutState(), source=Source.PAGE, actor="person", now=NOW, evidence={"ip": "203.0.113.9"}
    )
    assert d.changed
    assert d.state == OptOutState(True, NOW, Source.PAGE)
    assert d.event.kind is EventKind.UNSUBSCRIBE
    assert d.event.evidence == {"ip": "203.0.113.9"}


def test_second_unsubscribe_changes_nothing():
    first = unsubscribe(OptOutState(), source=Source.API, actor="a", now=NOW)
    again = unsubscribe(first.state, source=Source.CLI, actor="b", now=NOW)
    assert not again.changed
    assert again.state == first.state  # first source and time are kept


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_resubscribe_needs_a_reason(reason):
    state = OptOutState(True, NOW, Source.API)
    with pytest.raises(ReasonRequired):
        resubscribe(state, source=Source.ADMIN, actor="admin", now=NOW, reason=reason)


def test_resubscribe_with_reason():
    state = OptOutState(True, NOW, Source.API)
    d = resubscribe(
        state, source=Source.ADMIN, actor="admin", now=NOW, reason="  asked  to be\nadded back "
    )
    assert d.state == OptOutState()
    assert d.event.kind is EventKind.RESUBSCRIBE
    assert d.event.reason == "asked to be added back"


def test_resubscribe_of_subscribed_person_changes_nothing():
    d = resubscribe(OptOutState(), source=Source.ADMIN, actor="a", now=NOW, reason="x")
    assert not d.changed


def test_a_sync_never_resubscribes():
    with pytest.raises(ValueError, match="never re-subscribes"):
        resubscribe(
            OptOutState(True, NOW, Source.API),
            source=Source.SALESFORCE,
            actor="sync",
            now=NOW,
            reason="x",
        )
