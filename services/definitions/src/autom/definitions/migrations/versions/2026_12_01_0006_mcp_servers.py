"""MCP servers a workspace registers as tool sources

Revision ID: 0006_definitions
Revises: 0005_definitions
Create Date: 2026-12-01 07:10:00

Schema: adds `definitions.mcp_servers` (primary key `workspace_id`, `name`; `url` of the
streamable HTTP endpoint; `headers` JSONB of header name -> value, where a value may hold
`{{ secrets.NAME }}` references rendered on use; `created_at`, `updated_at`).

Downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_definitions"
down_revision = "0005_definitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "name"),
        schema="definitions",
    )


def downgrade() -> None:
    op.drop_table("mcp_servers", schema="definitions")
