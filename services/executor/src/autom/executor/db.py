"""The executor schema: runs, their step records (one row each) and the outbox."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from autom.core import db
from autom.core.audit import audit_outbox_table
from autom.core.bus import outbox_table

SCHEMA = "executor"
metadata = db.service_metadata(SCHEMA)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    # One run per fire, whatever the redeliveries.
    Column("fire_id", String(255), nullable=False, unique=True),
    Column("workspace_id", String(64), nullable=False),
    Column("automation_id", String(64), nullable=False),
    Column("automation_version", BigInteger, nullable=False, server_default="0"),
    Column("trigger_type", String(32), nullable=False),
    Column("trigger_id", String(128), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    # The fire's own inputs, before dispatch merges trigger inputs and runtime keys.
    Column("fire_inputs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The dispatched inputs; NULL until dispatch succeeded.
    Column("inputs", JSONB, nullable=True),
    Column("scheduled_for", DateTime(timezone=True), nullable=True),
    Column("fired_at", DateTime(timezone=True), nullable=True),
    Column("last_fired_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("error", JSONB, nullable=True),
    Column("retry_of_run_id", String(64), nullable=False, server_default=""),
    Column("resume_from_step", String(128), nullable=False, server_default=""),
    Column("principal", String(255), nullable=False, server_default=""),
    Column("cost_usd", Double, nullable=False, server_default="0"),
    Column("attempt", Integer, nullable=False, server_default="0"),
    # The lease: the worker holding lease_token may change the run until lease_expires_at.
    Column("lease_token", String(64), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("cancel_reason", Text, nullable=False, server_default=""),
    # Held back by concurrency buffer_one / buffer_all.
    Column("buffered", Boolean, nullable=False, server_default=text("false")),
    # Times the orphan sweep re-published the fire of a run that had been taken up again
    # since (a crash loop, not an outage); past the limit the run fails instead.
    Column("orphan_resumes", Integer, nullable=False, server_default="0"),
    # `attempt` when the sweep last re-published the fire.
    Column("resumed_attempt", Integer, nullable=False, server_default="0"),
    # `phase:step_id` of side-effecting steps whose action was called: a resume is a replay.
    Column("started_steps", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    # Event-triggered runs: the event (subject, stream, sequence), the run that led here and
    # how many runs long the chain is, so a cycle stops at the configured depth.
    Column("cause", JSONB, nullable=True),
    Column("upstream_run_id", String(64), nullable=False, server_default=""),
    Column("chain_depth", Integer, nullable=False, server_default="0"),
    Column("note", Text, nullable=False, server_default=""),
)
Index(
    "ix_runs_workspace_created",
    runs.c.workspace_id,
    runs.c.created_at.desc(),
    runs.c.id.desc(),
)
Index(
    "ix_runs_automation_created",
    runs.c.automation_id,
    runs.c.created_at.desc(),
    runs.c.id.desc(),
)
Index(
    "ix_runs_automation_active",
    runs.c.automation_id,
    runs.c.created_at,
    postgresql_where=text("status IN ('pending', 'running')"),
)

# Step records in execution order (seq from 1): plan steps, then on_failure steps. One row per
# record, so recording a step is one insert whatever the run's length.
Index(
    "ix_runs_upstream_run_id",
    runs.c.upstream_run_id,
    postgresql_where=text("upstream_run_id <> ''"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column(
        "run_id",
        String(64),
        ForeignKey("runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("step_id", String(128), nullable=False),
    Column("action", String(128), nullable=False, server_default=""),
    Column("phase", String(16), nullable=False, server_default="plan"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("params", JSONB, nullable=True),
    Column("output", JSONB, nullable=True),
    Column("error", JSONB, nullable=True),
    Column("cost_usd", Double, nullable=False, server_default="0"),
    Column("usage", JSONB, nullable=True),
    # Above the size cap, params/output hold a marker object; these keep the original size.
    Column("params_truncated", Boolean, nullable=False, server_default=text("false")),
    Column("params_size_bytes", BigInteger, nullable=True),
    Column("output_truncated", Boolean, nullable=False, server_default=text("false")),
    Column("output_size_bytes", BigInteger, nullable=True),
    # Record keys this schema has no column for, kept as they were written.
    Column("extra", JSONB, nullable=True),
)

# One row per tool call of an agent_task step, written before the call and after it: a
# resumed step reuses what a completed call returned.
tool_calls = Table(
    "tool_calls",
    metadata,
    Column(
        "run_id",
        String(64),
        ForeignKey("runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("step_id", String(128), primary_key=True),
    Column("call_n", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("arguments", JSONB, nullable=True),
    Column("result", JSONB, nullable=True),
    Column("result_truncated", Boolean, nullable=False, server_default=text("false")),
    Column("error", JSONB, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

# Requests per key in fixed one-minute windows, counted in the database so every replica
# shares the limit.
rate_counters = Table(
    "rate_counters",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("count", Integer, nullable=False),
)

outbox = outbox_table(metadata)
audit_outbox = audit_outbox_table(metadata)


async def migrate(url: str) -> None:
    """Upgrade the executor schema to head."""
    await db.migrate(url=url, schema=SCHEMA, script_location=Path(__file__).parent / "migrations")
