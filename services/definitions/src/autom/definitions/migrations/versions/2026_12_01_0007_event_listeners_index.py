"""index of the automations that listen for events

Revision ID: 0007_definitions
Revises: 0006_definitions
Create Date: 2026-12-01 12:10:00

Schema: adds the partial index `ix_automations_event_listeners` on
`definitions.automations (workspace_id)` over live, active automations with an event trigger.
Every finished run and custom event asks which automations of its workspace listen; without
it that question read every automation of the workspace.

Downgrade drops the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_definitions"
down_revision = "0006_definitions"
branch_labels = None
depends_on = None

# The same text as autom.definitions.db.LISTENS_FOR_EVENTS when this revision was written.
_PREDICATE = (
    "status = 'active' AND deleted_at IS NULL"
    """ AND (definition -> 'triggers') @> '[{"type": "event"}]'::jsonb"""
)


def upgrade() -> None:
    op.create_index(
        "ix_automations_event_listeners",
        "automations",
        ["workspace_id"],
        schema="definitions",
        postgresql_where=sa.text(_PREDICATE),
    )


def downgrade() -> None:
    op.drop_index("ix_automations_event_listeners", "automations", schema="definitions")
