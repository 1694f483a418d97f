"""accounts that can be taken away: session epochs, unique live token names, the admin
audit log, retired unsubscribe-link keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

* ``users.session_epoch``: random; the session cookie carries it and every request
  compares it, so a password reset or a key rotation ends the user's sessions and a
  user re-created under a reused id never inherits an old one. Existing users get a
  random value (their current sessions end: they sign in again once).
* ``uq_api_tokens_live_name``: names are unique among live (unrevoked) tokens. Older
  duplicates are renamed ``NAME #ID`` (the oldest keeps its name).
* ``admin_audit``: who changed which user, token or key, and when.
* ``retired_link_keys``: link-signing keys of retired secret keys, sealed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = "revoked_at IS NULL"


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.String(length=32), nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE users SET session_epoch = md5(random()::text || id::text)")
    else:
        op.execute("UPDATE users SET session_epoch = lower(hex(randomblob(16)))")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("session_epoch", existing_type=sa.String(length=32), nullable=False)

    op.execute(
        "UPDATE api_tokens SET name = substr(name, 1, 100) || ' #' || CAST(id AS VARCHAR(20)) "
        f"WHERE {LIVE} AND id NOT IN "
        f"(SELECT MIN(id) FROM api_tokens WHERE {LIVE} GROUP BY name)"
    )
    op.create_index(
        "uq_api_tokens_live_name",
        "api_tokens",
        ["name"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )

    op.create_table(
        "admin_audit",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=254), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    op.create_index(op.f("ix_admin_audit_created_at"), "admin_audit", ["created_at"])

    op.create_table(
        "retired_link_keys",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retired_link_keys")),
    )


def downgrade() -> None:
    op.drop_table("retired_link_keys")
    op.drop_index(op.f("ix_admin_audit_created_at"), table_name="admin_audit")
    op.drop_table("admin_audit")
    op.drop_index("uq_api_tokens_live_name", table_name="api_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
