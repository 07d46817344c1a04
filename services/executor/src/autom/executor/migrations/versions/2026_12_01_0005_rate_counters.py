"""rate counters: fixed one-minute windows shared by every executor replica

Revision ID: 0005_executor_rate_counters
Revises: 0004_executor_audit_outbox
Create Date: 2026-12-01 02:45:00

Schema: adds `executor.rate_counters` (`key`, `window_start`, `count`; primary key on
`key, window_start`). Rows are counters of requests per key and window (a webhook trigger's
deliveries, say); a row past its window is deleted by the next hit on the same key.

Downgrade drops the table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_executor_rate_counters"
down_revision = "0004_executor_audit_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_counters"),
        schema="executor",
    )


def downgrade() -> None:
    op.drop_table("rate_counters", schema="executor")
