"""The drafter schema: drafts and their revisions, and the migration entry point."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from autom.core import db
from autom.core.audit import audit_outbox_table

SCHEMA = "drafter"
metadata = db.service_metadata(SCHEMA)

drafts = Table(
    "drafts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("intent", Text, nullable=False),
    Column("timezone", String(64), nullable=False),
    # DraftAutomation's idempotency key; NULLs never collide.
    Column("request_id", String(128), nullable=True),
    Column("base_automation_id", String(64), nullable=False, server_default=""),
    Column("base_version", BigInteger, nullable=False, server_default="0"),
    # The base version's definition, so previews can say what a change draft changes.
    Column("base_definition", JSONB, nullable=True),
    Column("automation_id", String(64), nullable=False, server_default=""),
    Column("automation_version", BigInteger, nullable=False, server_default="0"),
    Column("reject_reason", Text, nullable=False, server_default=""),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("workspace_id", "request_id", name="uq_drafts_workspace_request"),
)
Index("ix_drafts_workspace_created", drafts.c.workspace_id, drafts.c.created_at, drafts.c.id)

revisions = Table(
    "revisions",
    metadata,
    Column("draft_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("instruction", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("definition", JSONB, nullable=True),
    Column("violations", JSONB, nullable=False),
    Column("questions", JSONB, nullable=False),
    Column("error_type", String(64), nullable=False, server_default=""),
    Column("error_message", Text, nullable=False, server_default=""),
    Column("message", Text, nullable=False, server_default=""),
    # The chat messages of this turn (user, assistant and repair prompts), replayed on refine.
    Column("messages", JSONB, nullable=False),
    Column("preview", JSONB, nullable=True),
    Column("model", String(255), nullable=False, server_default=""),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("calls", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("draft_id", "number"),
    ForeignKeyConstraint(["draft_id"], ["drafts.id"], ondelete="CASCADE"),
    UniqueConstraint("draft_id", "request_id", name="uq_revisions_draft_request"),
)

# Audit entries of approvals and rejections, relayed to definitions (the drafter has no
# other outbox: it publishes nothing else).
audit_outbox = audit_outbox_table(metadata)


async def migrate(url: str) -> None:
    """Upgrade the drafter schema to head."""
    await db.migrate(url=url, schema=SCHEMA, script_location=Path(__file__).parent / "migrations")
