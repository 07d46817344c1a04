"""order by the definitions revision; sync generations instead of clocks

Revision ID: 0002_scheduler
Revises: 0001_scheduler
Create Date: 2026-11-30 23:50:00

Replaces `automations.changed_at` (a definitions replica's clock) with `revision` (assigned
by the definitions database; existing rows get 0, so the next event or resync of each
automation, which carries its real revision, is applied). Adds `sync_generation` and the
sequence `sync_generations`: a resync stamps what it lists and sweeps what it did not.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_scheduler"
down_revision = "0001_scheduler"
branch_labels = None
depends_on = None

SCHEMA = "scheduler"


def upgrade() -> None:
    op.execute(sa.text(f"CREATE SEQUENCE {SCHEMA}.sync_generations"))
    op.add_column(
        "automations",
        sa.Column("revision", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "automations",
        sa.Column("sync_generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_automations_sync_generation", "automations", ["sync_generation"], schema=SCHEMA
    )
    op.drop_column("automations", "changed_at", schema=SCHEMA)


def downgrade() -> None:
    op.add_column(
        "automations",
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.drop_index("ix_automations_sync_generation", table_name="automations", schema=SCHEMA)
    op.drop_column("automations", "sync_generation", schema=SCHEMA)
    op.drop_column("automations", "revision", schema=SCHEMA)
    op.execute(sa.text(f"DROP SEQUENCE {SCHEMA}.sync_generations"))
