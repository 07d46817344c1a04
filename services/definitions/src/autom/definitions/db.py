"""The definitions schema: tables, and the migration entry point."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from autom.core import db
from autom.core.bus import outbox_table

SCHEMA = "definitions"
metadata = db.service_metadata(SCHEMA)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("principal", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("workspace_id", "principal"),
    ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(64), nullable=False, index=True),
    Column("principal", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(255), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Orders every change of an automation (pause and resume do not bump `version`): assigned by
# the database, so no replica's clock takes part in ordering.
revisions = Sequence("automation_revisions", metadata=metadata)

automations = Table(
    "automations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("pause_note", Text, nullable=False, server_default=""),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column(
        "revision",
        BigInteger,
        revisions,
        server_default=revisions.next_value(),
        nullable=False,
    ),
)
Index(
    "uq_automations_workspace_name_live",
    automations.c.workspace_id,
    automations.c.name,
    unique=True,
    postgresql_where=text("deleted_at IS NULL"),
)
Index(
    "ix_automations_workspace_name_id",
    automations.c.workspace_id,
    automations.c.name,
    automations.c.id,
)
# Live, active automations: the active-automations quota counts them on every activation.
# Queries repeat this predicate word for word (no bound status) so the planner can use it.
LIVE_ACTIVE = text("status = 'active' AND deleted_at IS NULL")
Index("ix_automations_workspace_active", automations.c.workspace_id, postgresql_where=LIVE_ACTIVE)
# Live, active automations with an event trigger: every finished run and custom event looks
# them up. Queries repeat this predicate word for word so the planner can use the index.
LISTENS_FOR_EVENTS = text(
    "status = 'active' AND deleted_at IS NULL"
    """ AND (definition -> 'triggers') @> '[{"type": "event"}]'::jsonb"""
)
Index(
    "ix_automations_event_listeners",
    automations.c.workspace_id,
    postgresql_where=LISTENS_FOR_EVENTS,
)

automation_versions = Table(
    "automation_versions",
    metadata,
    Column("automation_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("automation_id", "version"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("method", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("resource_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("workspace_id", "method", "request_id"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("workspace_id", "name"),
    UniqueConstraint("workspace_id", "name", name="uq_secrets_workspace_name"),
)

# MCP servers of a workspace; header values may hold `{{ secrets.NAME }}` (rendered on use).
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("workspace_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("workspace_id", "name"),
)

# One row per webhook trigger of a live automation: the secret part of its URL.
webhooks = Table(
    "webhooks",
    metadata,
    Column("hook_id", String(64), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("automation_id", String(64), nullable=False),
    Column("trigger_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("automation_id", "trigger_id", name="uq_webhooks_automation_id_trigger_id"),
)

# Quotas the deployment admin set for a workspace (name -> limit); missing ones default.
workspace_quotas = Table(
    "workspace_quotas",
    metadata,
    Column("workspace_id", String(64), primary_key=True),
    Column("limits", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(255), nullable=False),
)

outbox = outbox_table(metadata)

audit_seq = Sequence("audit_events_seq", metadata=metadata)

# Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0003).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(64), primary_key=True),
    # Insertion order: the stable tiebreak of the newest-first listing.
    Column("seq", BigInteger, audit_seq, server_default=audit_seq.next_value(), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("token_id", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("service", String(32), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(255), nullable=False),
    Column("version_before", BigInteger, nullable=False),
    Column("version_after", BigInteger, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("details", JSONB, nullable=False),
)
Index(
    "ix_audit_events_workspace_time",
    audit_events.c.workspace_id,
    audit_events.c.occurred_at,
    audit_events.c.seq,
)


async def migrate(url: str) -> None:
    """Upgrade the definitions schema to head."""
    await migrate_to(url, "head")


async def migrate_to(url: str, revision: str) -> None:
    """Upgrade the definitions schema to one revision (tests of data migrations start here)."""
    await db.migrate(
        url=url,
        schema=SCHEMA,
        script_location=Path(__file__).parent / "migrations",
        revision=revision,
    )
