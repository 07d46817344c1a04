"""run cause: what event started a run, the upstream run and the chain depth

Revision ID: 0006_executor_run_cause
Revises: 0005_executor_rate_counters
Create Date: 2026-12-01 03:00:00

Schema: adds to `executor.runs` the columns `cause` (JSONB, nullable: the event's subject,
stream and sequence), `upstream_run_id` (text, default '') and `chain_depth` (integer,
default 0), and an index on `upstream_run_id` for runs that have one. Existing runs keep the
defaults: none of them was started by an event.

Downgrade drops the index and the columns.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_executor_run_cause"
down_revision = "0005_executor_rate_counters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("cause", postgresql.JSONB(), nullable=True), schema="executor"
    )
    op.add_column(
        "runs",
        sa.Column("upstream_run_id", sa.String(64), server_default="", nullable=False),
        schema="executor",
    )
    op.add_column(
        "runs",
        sa.Column("chain_depth", sa.Integer(), server_default="0", nullable=False),
        schema="executor",
    )
    op.create_index(
        "ix_runs_upstream_run_id",
        "runs",
        ["upstream_run_id"],
        schema="executor",
        postgresql_where=sa.text("upstream_run_id <> ''"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_upstream_run_id", table_name="runs", schema="executor")
    op.drop_column("runs", "chain_depth", schema="executor")
    op.drop_column("runs", "upstream_run_id", schema="executor")
    op.drop_column("runs", "cause", schema="executor")
