"""workspace quotas set by the deployment admin

Revision ID: 0005_definitions
Revises: 0004_definitions
Create Date: 2026-12-01 03:10:00

Schema: adds `definitions.workspace_quotas` (`workspace_id` primary key, `limits` JSONB of
quota name -> limit, `updated_at`, `updated_by`). A workspace without a row, or a quota
missing from its row, has the deployment's default (AUTOM_QUOTA_DEFAULTS).

Downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_definitions"
down_revision = "0004_definitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_quotas",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("limits", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        schema="definitions",
    )


def downgrade() -> None:
    op.drop_table("workspace_quotas", schema="definitions")
