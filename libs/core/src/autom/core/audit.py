"""The audit log's shared half: what a mutating call records, and how it reaches definitions.

Each service writes an `AuditEvent` into its own audit outbox in the transaction of the
change it records, so an entry exists exactly when the change committed; a relay publishes
it on the AUDIT stream, which definitions owns, stores (append-only) and serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.js import JetStreamContext
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import audit_pb2
from autom.core.auth import Principal
from autom.core.bus import AUDIT_STREAM, OutboxRelay, outbox_row, outbox_table
from autom.core.logging import current_request_id
from autom.core.protoconv import to_timestamp

__all__ = [
    "AUDIT_STREAM",
    "SUBJECT",
    "Change",
    "audit_event",
    "audit_outbox_table",
    "audit_relay",
    "audit_row",
]
SUBJECT = "automations.audit.{}"


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


def audit_relay(engine: AsyncEngine, table: Table, js: JetStreamContext) -> OutboxRelay:
    """The relay of a service's audit outbox; published rows are deleted (definitions has them)."""
    return OutboxRelay(engine=engine, table=table, js=js, keep_published=None)
