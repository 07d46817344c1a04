"""webhook endpoints

Revision ID: 0004_definitions
Revises: 0003_definitions
Create Date: 2026-12-01 02:40:00

Schema: adds `definitions.webhooks`, one row per webhook trigger of a live automation:
`hook_id` (primary key, the unguessable id of `POST /v1/hooks/{hook_id}`), `automation_id`,
`trigger_id` (unique together), `workspace_id` and `created_at`. No data is migrated: no
automation could declare a webhook trigger before this revision.

Downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_definitions"
down_revision = "0003_definitions"
branch_labels = None
depends_on = None

SCHEMA = "definitions"


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("hook_id", sa.String(64), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("automation_id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "automation_id", "trigger_id", name="uq_webhooks_automation_id_trigger_id"
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("webhooks", schema=SCHEMA)
