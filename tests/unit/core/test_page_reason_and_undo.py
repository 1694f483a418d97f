"""The public page's rules: what a reason answer keeps, when an undo may happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optsync.domain.optout import (
    EventKind,
    ReasonProblem,
    UndoRefusal,
    page_reason,
    undo_reason,
    undo_refusal,
)

ALL = ("too_many", "not_relevant", "never_signed_up", "other")
NO_OTHER = ("too_many", "not_relevant")
AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("choice", "text", "offered", "evidence", "problem"),
    [
        (None, None, ALL, {}, None),
        ("", "   ", ALL, {}, None),
        ("too_many", None, ALL, {"reason_choice": "too_many"}, None),
        (" too_many ", "", ALL, {"reason_choice": "too_many"}, None),
        ("other", " a\n b ", ALL, {"reason_choice": "other", "reason_text": "a b"}, None),
        (None, "words", ALL, {"reason_choice": "other", "reason_text": "words"}, None),
        ("too_many", "more", ALL, {"reason_choice": "too_many", "reason_text": "more"}, None),
        ("spam", None, ALL, {}, ReasonProblem.CHOICE),
        ("TOO_MANY", None, ALL, {}, ReasonProblem.CHOICE),  # full match, exact case
        ("never_signed_up", None, NO_OTHER, {}, ReasonProblem.CHOICE),
        ("too_many", "text", NO_OTHER, {}, ReasonProblem.CHOICE),  # no box offered
        ("too_many", None, (), {}, ReasonProblem.CHOICE),
        ("other", "x" * 500, ALL, {"reason_choice": "other", "reason_text": "x" * 500}, None),
        ("other", "x" * 501, ALL, {}, ReasonProblem.LENGTH),
    ],
)
def test_page_reason(choice, text, offered, evidence, problem):
    assert page_reason(choice, text, offered) == (evidence, problem)


@pytest.mark.parametrize(
    ("kind", "latest", "age", "refusal"),
    [
        (EventKind.UNSUBSCRIBE, True, timedelta(0), None),
        (EventKind.UNSUBSCRIBE, True, timedelta(minutes=10), None),
        (EventKind.UNSUBSCRIBE, True, timedelta(minutes=10, microseconds=1), UndoRefusal.TOO_LATE),
        (EventKind.UNSUBSCRIBE, True, -timedelta(seconds=5), None),  # clocks a little apart
        (EventKind.UNSUBSCRIBE, False, timedelta(minutes=1), UndoRefusal.CHANGED),
        (EventKind.UNSUBSCRIBE, False, timedelta(hours=1), UndoRefusal.CHANGED),
        (EventKind.RESUBSCRIBE, True, timedelta(minutes=1), UndoRefusal.CHANGED),
    ],
)
def test_undo_refusal(kind, latest, age, refusal):
    assert (
        undo_refusal(entry_kind=kind, entry_at=AT, entry_is_latest=latest, now=AT + age) == refusal
    )


def test_undo_reason_names_the_window():
    assert "within 10 minutes" in undo_reason()
    assert "within 3 minutes" in undo_reason(timedelta(minutes=3))
