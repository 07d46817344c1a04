"""index of the live, active automations of a workspace

Revision ID: 0008_definitions
Revises: 0007_definitions
Create Date: 2026-12-02 05:00:00

Schema: adds the partial index `ix_automations_workspace_active` on
`definitions.automations (workspace_id)` over live, active automations. Every create and
resume counts them against the active-automations quota; without it that count read every
automation of the table, paused, archived and deleted ones included.

Downgrade drops the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_definitions"
down_revision = "0007_definitions"
branch_labels = None
depends_on = None

# The same text as autom.definitions.db.LIVE_ACTIVE when this revision was written.
_PREDICATE = "status = 'active' AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_automations_workspace_active",
        "automations",
        ["workspace_id"],
        schema="definitions",
        postgresql_where=sa.text(_PREDICATE),
    )


def downgrade() -> None:
    op.drop_index("ix_automations_workspace_active", "automations", schema="definitions")
