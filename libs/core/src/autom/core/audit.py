"""The audit log's shared half: what a mutating call records, and how it reaches definitions.

Each service writes an `AuditEvent` into its own audit outbox in the transaction of the
change it records, so an entry exists exactly when the change committed; a relay publishes
it on the AUDIT stream, which definitions owns, stores (append-only) and serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import audit_pb2
from autom.core.auth import Principal
from autom.core.bus import AUDIT_STREAM, Message, OutboxRelay, outbox_row, outbox_table
from autom.core.logging import current_request_id
from autom.core.protoconv import to_timestamp

__all__ = [
    "AUDIT_STREAM",
    "BATCH_HEADER",
    "SUBJECT",
    "Change",
    "audit_event",
    "audit_outbox_table",
    "audit_relay",
    "audit_row",
    "combine_entries",
]
SUBJECT = "automations.audit.{}"
# Marks a message carrying an AuditBatch (its value: how many entries) instead of one entry.
BATCH_HEADER = "Autom-Audit-Batch"
# Entries per message at most, and their bytes: far below NATS's 1 MiB payload limit.
BATCH_MAX = 200
BATCH_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Change:
    """One mutation as the audit log tells it."""

    action: str
    target_type: str
    target_id: str
    workspace_id: str
    version_before: int = 0
    version_after: int = 0
    # Names, roles, statuses: never a secret's value.
    details: Mapping[str, str] = field(default_factory=dict)


def audit_event(service: str, change: Change, actor: Principal) -> audit_pb2.AuditEvent:
    """The entry for `change` made by `actor` in the call being served."""
    return audit_pb2.AuditEvent(
        event_id=str(uuid.uuid4()),
        occur_time=to_timestamp(datetime.now(UTC)),
        workspace_id=change.workspace_id,
        actor=actor.subject,
        token_id=actor.token_id,
        role=actor.role.value,
        service=service,
        action=change.action,
        target_type=change.target_type,
        target_id=change.target_id,
        version_before=change.version_before,
        version_after=change.version_after,
        # The one request id of the call (grpcserver binds it; logs carry the same).
        request_id=current_request_id() or "",
        details=dict(change.details),
    )


def audit_row(service: str, change: Change, actor: Principal) -> dict[str, object]:
    """An outbox row carrying the entry, to insert with the change it records."""
    event = audit_event(service, change, actor)
    return outbox_row(SUBJECT.format(service), event.event_id, event.SerializeToString())


def audit_outbox_table(metadata: MetaData) -> Table:
    """A service's audit outbox (its migration creates `audit_outbox` like `outbox`)."""
    return outbox_table(metadata, "audit_outbox")


def combine_entries(rows: Sequence[Any]) -> list[Message]:
    """Audit outbox rows as messages: entries of one subject go together, up to BATCH_MAX.

    A lone entry goes as it is (an AuditEvent); several go as one AuditBatch. A batch's
    msg_id names its first entry and its size, so the same rows published again are
    deduplicated by JetStream, and rows grouped otherwise still make each entry once
    (definitions keys them by event id).
    """
    groups: list[list[Any]] = []
    size = 0
    for row in rows:
        group = groups[-1] if groups else None
        if (
            group is None
            or group[0].subject != row.subject
            or len(group) >= BATCH_MAX
            or size + len(row.payload) > BATCH_MAX_BYTES
        ):
            groups.append([row])
            size = len(row.payload)
            continue
        group.append(row)
        size += len(row.payload)
    messages: list[Message] = []
    for group in groups:
        first = group[0]
        if len(group) == 1:
            messages.append((first.subject, first.payload, first.msg_id, {}))
            continue
        batch = audit_pb2.AuditBatch(
            events=[audit_pb2.AuditEvent.FromString(r.payload) for r in group]
        )
        messages.append(
            (
                first.subject,
                batch.SerializeToString(),
                f"{first.msg_id}+{len(group)}",
                {BATCH_HEADER: str(len(group))},
            )
        )
    return messages


def audit_relay(engine: AsyncEngine, table: Table, js: JetStreamContext) -> OutboxRelay:
    """The relay of a service's audit outbox; published rows are deleted (definitions has them)."""
    return OutboxRelay(
        engine=engine, table=table, js=js, keep_published=None, combine=combine_entries
    )
