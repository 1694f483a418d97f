"""Users of the web app and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from optsync.errors import UsageError
from optsync.security import MIN_PASSWORD_LENGTH, hash_password, new_api_token
from optsync.services.optouts import parse_email
from optsync.store.models import ApiToken, User


def add_user(session: Session, email: str, password: str, *, is_admin: bool, now: datetime) -> User:
    normal = parse_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(
            f"password: use at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    if session.scalars(select(User).where(User.email == normal)).first() is not None:
        raise UsageError(f"email: a user {normal} already exists.", field="email")
    user = User(
        email=normal, password_hash=hash_password(password), is_admin=is_admin, created_at=now
    )
    session.add(user)
    session.flush()
    return user


def create_token(session: Session, name: str, *, is_admin: bool, now: datetime) -> str:
    """Store a new API token (hashed) and return the token itself, shown only once."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 120:
        raise UsageError("NAME: give the token a name of 1 to 120 characters.", field="NAME")
    token, token_hash = new_api_token()
    session.add(
        ApiToken(
            name=cleaned, token_hash=token_hash, prefix=token[:8], is_admin=is_admin, created_at=now
        )
    )
    session.flush()
    return token
