"""tool calls: one row per tool call of an agent_task step

Revision ID: 0008_executor_tool_calls
Revises: 0007_executor_run_note
Create Date: 2026-12-01 06:30:00

Schema: adds `executor.tool_calls` (primary key `run_id, step_id, call_n`): the tool's name,
arguments (secrets redacted), result (size-capped), error, status (`running`, `succeeded`,
`failed`, `refused`), the step attempt that made it, and start/finish times. A row is written
as `running` before the tool is called and finished after it, so a resumed step reuses the
result of a completed call instead of calling the tool again. Existing runs have no rows.

Downgrade drops the table.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_executor_tool_calls"
down_revision = "0007_executor_run_note"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_calls",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("call_n", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("arguments", postgresql.JSONB(), nullable=True),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("result_truncated", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["executor.runs.id"], name=op.f("fk_tool_calls_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "step_id", "call_n", name=op.f("pk_tool_calls")),
        schema="executor",
    )


def downgrade() -> None:
    op.drop_table("tool_calls", schema="executor")
