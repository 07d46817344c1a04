"""The scheduler schema: schedules, fires, the scheduler's view of automations, outbox."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Sequence,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from autom.core import db
from autom.core.audit import audit_outbox_table
from autom.core.bus import outbox_table

SCHEMA = "scheduler"
metadata = db.service_metadata(SCHEMA)

# One value per resync: every automation the resync lists, or an event touches while it
# runs, is stamped with at least it; live rows left below it afterwards are gone upstream.
sync_generations = Sequence("sync_generations", metadata=metadata)

# What the scheduler last applied per automation: orders events and resyncs by the revision
# the definitions database assigned, and keeps a tombstone so a late, older event cannot
# resurrect a deleted automation's schedules.
automations = Table(
    "automations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False, server_default=text("0")),
    Column("status", String(16), nullable=False),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    Column("sync_generation", BigInteger, nullable=False, server_default=text("0")),
)
Index("ix_automations_sync_generation", automations.c.sync_generation)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("workspace_id", String(64), nullable=False),
    Column("automation_id", String(64), nullable=False, index=True),
    Column("automation_version", BigInteger, nullable=False),
    Column("trigger_id", String(128), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("on_missing", String(8), nullable=False),
    Column("on_repeated", String(8), nullable=False),
    Column("catchup", String(8), nullable=False),
    Column("catchup_window_s", Float, nullable=False),
    Column("jitter_s", Float, nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=True),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("max_fires", BigInteger, nullable=True),
    Column("inputs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("principal", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False),
    # Nominal next fire; NULL when the schedule has ended (end_at, max_fires).
    Column("next_fire_at", DateTime(timezone=True), nullable=True),
    # next_fire_at plus its deterministic jitter: what the due loop waits for.
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("last_fired_at", DateTime(timezone=True), nullable=True),
    Column("fired_count", BigInteger, nullable=False, server_default=text("0")),
    Column("missed_count", BigInteger, nullable=False, server_default=text("0")),
    Column("skipped_count", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index(
    "ix_schedules_due",
    schedules.c.due_at,
    postgresql_where=text("enabled AND due_at IS NOT NULL"),
)
Index("ix_schedules_workspace_next", schedules.c.workspace_id, schedules.c.next_fire_at)

fires = Table(
    "fires",
    metadata,
    Column("fire_id", String(300), primary_key=True),
    Column("schedule_id", String(200), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("scheduled_for", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("run_status", String(32), nullable=True),
)
# The key that makes a nominal instant fire once, whatever JetStream's dedupe window says.
Index(
    "uq_fires_schedule_nominal",
    fires.c.schedule_id,
    fires.c.scheduled_for,
    unique=True,
    postgresql_where=text("kind <> 'manual'"),
)
Index("ix_fires_schedule_fired", fires.c.schedule_id, fires.c.fired_at)
Index("ix_fires_fired_at", fires.c.fired_at)

# Published rows are deleted by the scheduler's relay; `created_at` doubles as
# "not before" so backfills can be released at a bounded rate.
outbox = outbox_table(metadata)
audit_outbox = audit_outbox_table(metadata)
Index("ix_outbox_pending_created", outbox.c.created_at, outbox.c.id)


async def migrate(url: str) -> None:
    """Upgrade the scheduler schema to head."""
    await db.migrate(url=url, schema=SCHEMA, script_location=Path(__file__).parent / "migrations")
