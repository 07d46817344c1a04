"""run note: a sentence the run carries about how it started

Revision ID: 0007_executor_run_note
Revises: 0006_executor_run_cause
Create Date: 2026-12-01 04:00:00

Schema: adds `executor.runs.note` (text, default ''), e.g. that a manual run was started
while its automation was paused. Existing runs keep ''.

Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_executor_run_note"
down_revision = "0006_executor_run_cause"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("note", sa.Text(), server_default="", nullable=False), schema="executor"
    )


def downgrade() -> None:
    op.drop_column("runs", "note", schema="executor")
