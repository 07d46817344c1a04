"""append-only audit log

Revision ID: 0003_definitions
Revises: 0002_definitions
Create Date: 2026-12-01 02:40:00

Schema: adds `definitions.audit_events` (one row per mutating call of any service, keyed by
the event id so a redelivered event is stored once), its sequence and a (workspace,
time, seq) index, and a trigger that refuses UPDATE, DELETE and TRUNCATE on it: entries are
only ever appended. No data changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_definitions"
down_revision = "0002_definitions"
branch_labels = None
depends_on = None

SCHEMA = "definitions"


def upgrade() -> None:
    op.execute(sa.text(f"CREATE SEQUENCE {SCHEMA}.audit_events_seq"))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger(),
            server_default=sa.text(f"nextval('{SCHEMA}.audit_events_seq')"),
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("version_before", sa.BigInteger(), nullable=False),
        sa.Column("version_after", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_audit_events_workspace_time",
        "audit_events",
        ["workspace_id", "occurred_at", "seq"],
        unique=False,
        schema=SCHEMA,
    )
    op.execute(
        sa.text(
            f"""
            CREATE FUNCTION {SCHEMA}.audit_events_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$
            """
        )
    )
    op.execute(
        sa.text(
            f"CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE "
            f"ON {SCHEMA}.audit_events FOR EACH ROW "
            f"EXECUTE FUNCTION {SCHEMA}.audit_events_append_only()"
        )
    )
    op.execute(
        sa.text(
            f"CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE "
            f"ON {SCHEMA}.audit_events FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {SCHEMA}.audit_events_append_only()"
        )
    )


def downgrade() -> None:
    op.drop_table("audit_events", schema=SCHEMA)
    op.execute(sa.text(f"DROP FUNCTION {SCHEMA}.audit_events_append_only()"))
    op.execute(sa.text(f"DROP SEQUENCE {SCHEMA}.audit_events_seq"))
