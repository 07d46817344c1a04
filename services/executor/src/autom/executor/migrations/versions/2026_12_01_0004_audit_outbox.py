"""audit outbox

Revision ID: 0004_executor_audit_outbox
Revises: 0003_executor_run_steps
Create Date: 2026-12-01 03:00:00

Schema: adds `executor.audit_outbox` (the same shape as `outbox`): audit entries of this
service's mutating calls, written with the change they record and relayed on their own to
the AUDIT stream that definitions stores. No data changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_executor_audit_outbox"
down_revision = "0003_executor_run_steps"
branch_labels = None
depends_on = None

SCHEMA = "executor"


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("msg_id", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_outbox")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_audit_outbox_unpublished",
        "audit_outbox",
        ["id"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("audit_outbox", schema=SCHEMA)
