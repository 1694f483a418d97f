"""Users of the web app and API tokens: who they are, taking them away, and the audit log.

Every change (a user added, removed, given another role or a new password; a token
created or revoked) writes one ``admin_audit`` row in the same transaction, naming the
actor (``user:EMAIL`` for the admin pages, ``cli:LOGIN`` for the command line), the
action, the target and the time.

**The last admin stays.** Removing or demoting an admin is one conditional statement
("... WHERE the user is no admin OR another admin exists"); on PostgreSQL the admin rows
are locked first (in id order), so two admins demoting each other at once cannot both
succeed. SQLite runs one writer at a time and the statement takes the write lock before
it reads, so it holds there too.

**Sessions end at once.** A session carries its user's ``session_epoch``; removing the
user deletes the row and a password reset draws a new epoch, so the next request of an
old session finds no match and is sent to sign in.

**Token names are unique among live tokens** (a partial unique index): a revoked token
keeps its name in the list, and the name may be given to a new token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from optsync.domain.spreadsheet import csv_lines
from optsync.errors import NotFoundError, UsageError
from optsync.security import MIN_PASSWORD_LENGTH, hash_password, new_api_token, new_session_epoch
from optsync.services.optouts import parse_email
from optsync.store.models import AdminAuditEntry, ApiToken, User

Role = Literal["admin", "member"]
MAX_TOKEN_NAME = 120
AUDIT_PAGE = 200


class LastAdminError(UsageError):
    """Removing or demoting this user would leave nobody who can administer optsync."""


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    role: str
    created_at: datetime
    last_login_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


@dataclass(frozen=True)
class TokenView:
    """A token as listed: never the secret (only its first characters, to recognise it)."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class AuditView:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


def _role(is_admin: bool) -> str:
    return "admin" if is_admin else "member"


# -- the audit log ----------------------------------------------------------------------


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Write one audit row in the caller's transaction (never a secret in it)."""
    session.execute(
        insert(AdminAuditEntry).values(
            created_at=now, actor=actor[:254], action=action, target=target, detail=detail
        )
    )


def audit_entries(session: Session, *, limit: int | None = AUDIT_PAGE) -> list[AuditView]:
    """The newest entries first."""
    query = select(AdminAuditEntry).order_by(AdminAuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [
        AuditView(r.id, r.created_at, r.actor, r.action, r.target, r.detail)
        for r in session.scalars(query)
    ]


AUDIT_COLUMNS = ("id", "created_at", "actor", "action", "target", "detail")


def audit_csv(entries: Iterable[AuditView]) -> Iterator[str]:
    """The audit log as CSV lines (header first), oldest first when given so, with
    formula-safe cells (:mod:`optsync.domain.spreadsheet`: a token name or an address is
    typed by people)."""
    return csv_lines(
        AUDIT_COLUMNS, ([entry.as_dict()[name] for name in AUDIT_COLUMNS] for entry in entries)
    )


# -- users ------------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"password: use at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )


def add_user(
    session: Session,
    email: str,
    password: str,
    *,
    is_admin: bool,
    now: datetime,
    actor: str = "cli",
) -> User:
    normal = parse_email(email)
    _check_password(password)
    if session.scalars(select(User).where(User.email == normal)).first() is not None:
        raise UsageError(f"email: a user {normal} already exists.", field="email")
    user = User(
        email=normal,
        password_hash=hash_password(password),
        is_admin=is_admin,
        created_at=now,
        session_epoch=new_session_epoch(),
    )
    session.add(user)
    session.flush()
    audit(session, actor=actor, action="user.add", target=normal, now=now, detail=_role(is_admin))
    return user


def list_users(session: Session) -> list[UserView]:
    rows = session.scalars(select(User).order_by(User.email))
    return [UserView(u.id, u.email, _role(u.is_admin), u.created_at, u.last_login_at) for u in rows]


def _lock_admins(session: Session) -> None:
    """PostgreSQL: lock every admin row (id order, no deadlock) so that the "another
    admin exists" check of the next statement cannot be raced. SQLite: nothing to do
    (``FOR UPDATE`` renders as nothing; its one writer at a time serialises)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.is_admin).order_by(User.id).with_for_update())


def _rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (``CursorResult.rowcount``)."""
    return int(result.rowcount)


def _another_admin(target: type[User]) -> ColumnElement[bool]:
    other = aliased(User)
    return or_(
        target.is_admin.is_(False),
        exists().where(and_(other.is_admin.is_(True), other.id != target.id)),
    )


def _missing_or_last(session: Session, normal: str) -> UsageError:
    if session.scalars(select(User.id).where(User.email == normal)).first() is None:
        return NotFoundError(
            f"email: no user {normal}.", field="email", fix="List them with `optsync user list`."
        )
    return LastAdminError(
        f"email: {normal} is the last admin; optsync needs at least one.",
        field="email",
        fix="Make another user an admin first (`optsync user set-role EMAIL admin`).",
    )


def remove_user(session: Session, email: str, *, actor: str, now: datetime) -> None:
    """Delete the user; their sessions end at their next request. Refused for the last
    admin."""
    normal = parse_email(email)
    _lock_admins(session)
    removed = _rowcount(
        session.execute(
            delete(User)
            .where(User.email == normal, _another_admin(User))
            .execution_options(synchronize_session=False)
        )
    )
    if not removed:
        raise _missing_or_last(session, normal)
    audit(session, actor=actor, action="user.remove", target=normal, now=now)


def set_role(session: Session, email: str, role: str, *, actor: str, now: datetime) -> bool:
    """Make the user an admin or a member; ``False`` when it already had that role.
    Demoting the last admin is refused."""
    if role not in ("admin", "member"):
        raise UsageError("ROLE: use admin or member.", field="ROLE")
    normal = parse_email(email)
    to_admin = role == "admin"
    condition = [User.email == normal, User.is_admin.is_(not to_admin)]
    if not to_admin:
        _lock_admins(session)
        condition.append(_another_admin(User))
    changed = _rowcount(
        session.execute(
            update(User)
            .where(*condition)
            .values(is_admin=to_admin)
            .execution_options(synchronize_session=False)
        )
    )
    if not changed:
        current = session.scalars(select(User.is_admin).where(User.email == normal)).first()
        if current is None or (current and not to_admin):
            raise _missing_or_last(session, normal)
        return False
    audit(session, actor=actor, action="user.set-role", target=normal, now=now, detail=role)
    return True


def reset_password(
    session: Session, email: str, password: str, *, actor: str, now: datetime
) -> None:
    """Set a new password and end every session of the user."""
    normal = parse_email(email)
    _check_password(password)
    changed = _rowcount(
        session.execute(
            update(User)
            .where(User.email == normal)
            .values(password_hash=hash_password(password), session_epoch=new_session_epoch())
            .execution_options(synchronize_session=False)
        )
    )
    if not changed:
        raise _missing_or_last(session, normal)
    audit(session, actor=actor, action="user.reset-password", target=normal, now=now)


def end_all_sessions(session: Session) -> int:
    """A new epoch for every user (the secret key was rotated); returns the count."""
    users = list(session.scalars(select(User.id)))
    for user_id in users:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(session_epoch=new_session_epoch())
            .execution_options(synchronize_session=False)
        )
    return len(users)


# -- tokens -----------------------------------------------------------------------------


def _duplicate_name(name: str) -> UsageError:
    return UsageError(
        f"NAME: a live token is already named {name!r}; token names are unique.",
        field="NAME",
        fix="Choose another name, or revoke the old one first (`optsync token revoke NAME`).",
    )


def create_token(
    session: Session, name: str, *, is_admin: bool, now: datetime, actor: str = "cli"
) -> str:
    """Store a new API token (hashed) and return the token itself, shown only once."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_TOKEN_NAME or any(ord(ch) < 32 for ch in cleaned):
        raise UsageError(
            f"NAME: give the token a name of 1 to {MAX_TOKEN_NAME} printable characters.",
            field="NAME",
        )
    if cleaned.isdigit():
        raise UsageError(
            "NAME: a token name cannot be only digits (`token revoke` takes an id too).",
            field="NAME",
        )
    taken = select(ApiToken.id).where(ApiToken.name == cleaned, ApiToken.revoked_at.is_(None))
    if session.scalars(taken).first() is not None:
        raise _duplicate_name(cleaned)
    token, token_hash = new_api_token()
    try:
        with session.begin_nested():  # the unique index decides a race between two creators
            session.add(
                ApiToken(
                    name=cleaned,
                    token_hash=token_hash,
                    prefix=token[:8],
                    is_admin=is_admin,
                    created_at=now,
                )
            )
            session.flush()
    except IntegrityError:
        raise _duplicate_name(cleaned) from None
    audit(
        session, actor=actor, action="token.create", target=cleaned, now=now, detail=_role(is_admin)
    )
    return token


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[TokenView]:
    query = select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [
        TokenView(
            t.id, t.name, _role(t.is_admin), t.prefix, t.created_at, t.last_used_at, t.revoked_at
        )
        for t in session.scalars(query)
    ]


def revoke_token(session: Session, name_or_id: str, *, actor: str, now: datetime) -> TokenView:
    """Revoke a live token by name or id; it answers 401 from its next request."""
    key = name_or_id.strip()
    by = ApiToken.id == int(key) if key.isdigit() and len(key) < 19 else ApiToken.name == key
    row = session.scalars(select(ApiToken).where(by, ApiToken.revoked_at.is_(None))).first()
    if row is None:
        raise NotFoundError(
            f"NAME_OR_ID: no live token {key!r}.",
            field="NAME_OR_ID",
            fix="List them with `optsync token list`.",
        )
    revoked = _rowcount(
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if not revoked:  # revoked by someone else meanwhile
        raise NotFoundError(f"NAME_OR_ID: no live token {key!r}.", field="NAME_OR_ID")
    audit(session, actor=actor, action="token.revoke", target=row.name, now=now)
    return TokenView(
        row.id, row.name, _role(row.is_admin), row.prefix, row.created_at, row.last_used_at, now
    )
