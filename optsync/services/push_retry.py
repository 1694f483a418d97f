"""Retry failed pushes once their fix is in place.

A push that failed permanently (field not updateable, record deleted, no access …) stays
``failed`` with the fix; nothing re-sends it on its own, because the same request would
fail the same way. Once an admin has applied the fix, this re-opens the pushes chosen by
error code, by address, or all of them: each becomes due now with its attempts counted
afresh (``store.outbox.retry_failed``, through the one write path's ``requeue``). Only a
person's latest push counts, and only while the person is still unsubscribed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from optsync.errors import UsageError
from optsync.services.optouts import parse_email
from optsync.store.models import OutboxPush, Person
from optsync.store.outbox import retry_failed

CODE_MAX = 80


@dataclass(frozen=True)
class RetryResult:
    reopened: int
    still_failed: int


def retry_pushes(
    session: Session,
    *,
    now: datetime,
    codes: Sequence[str] = (),
    emails: Sequence[str] = (),
    person_ids: Sequence[int] = (),
    all_failed: bool = False,
) -> RetryResult:
    """Re-open the failed pushes chosen by ``codes``, ``emails``/``person_ids`` or
    ``all_failed``; the filters combine (a code *and* an address)."""
    for code in codes:
        if not code or len(code) > CODE_MAX or not code.replace("_", "").isalnum():
            raise UsageError(
                f"code: {code!r} is not a Salesforce error code (letters, digits and _, "
                "such as INVALID_FIELD_FOR_INSERT_UPDATE).",
                field="code",
            )
    ids = list(person_ids)
    if emails:
        normal = [parse_email(e) for e in emails]
        rows = session.execute(select(Person.email, Person.id).where(Person.email.in_(normal)))
        found = {str(email): int(pid) for email, pid in rows}
        missing = [e for e in normal if e not in found]
        if missing:
            raise UsageError(f"email: no person with the address {missing[0]}.", field="email")
        ids += [found[e] for e in normal]
    if not (codes or ids or all_failed):
        raise UsageError(
            "Say which failed pushes to retry: --code CODE, --email ADDRESS or --all-failed.",
            field="code",
        )
    reopened = retry_failed(session, now=now, codes=codes, person_ids=ids, all_failed=all_failed)
    return RetryResult(reopened, failed_count(session))


def failed_count(session: Session) -> int:
    """Persons whose latest push failed."""
    latest = select(func.max(OutboxPush.id)).group_by(OutboxPush.person_id).scalar_subquery()
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxPush)
            .where(OutboxPush.state == "failed", OutboxPush.id.in_(latest))
        )
        or 0
    )


def failures_by_code(session: Session) -> list[tuple[str, str | None, int]]:
    """``(code, fix, persons)`` of the latest failed pushes, most frequent first."""
    latest = select(func.max(OutboxPush.id)).group_by(OutboxPush.person_id).scalar_subquery()
    rows = session.execute(
        select(OutboxPush.last_error_code, func.max(OutboxPush.fix), func.count())
        .where(OutboxPush.state == "failed", OutboxPush.id.in_(latest))
        .group_by(OutboxPush.last_error_code)
        .order_by(func.count().desc(), OutboxPush.last_error_code)
    )
    return [(str(code or "UNKNOWN"), fix, int(n)) for code, fix, n in rows]
