"""The audit log's store: entries of every service, appended here and listed to owners.

Definitions records its own mutations in the transaction that makes them; the other
services' entries arrive on the AUDIT stream (from their outboxes) and are inserted once
each, keyed by event id, so a redelivered message never makes a second entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.api.events.v1 import audit_pb2
from autom.core import bus
from autom.core.audit import AUDIT_STREAM, BATCH_HEADER, Change, audit_event
from autom.core.auth import Principal
from autom.core.batch import Batcher
from autom.core.errors import ValidationFailed, Violation
from autom.core.paging import decode_page_token, encode_page_token, page_size
from autom.core.protoconv import from_timestamp, to_timestamp
from autom.definitions import db

log = logging.getLogger(__name__)
SERVICE = "definitions"
DURABLE = "definitions-audit"
_BACKOFF = bus.Backoff()
# Messages handled at once: their entries are stored together (one transaction per batch).
IN_FLIGHT = 200


def never_fits(exc: BaseException) -> bool:
    """Whether a failed insert was refused for its values (the same on every retry)."""
    # SQLAlchemy's asyncpg dialect reports a value too long as a plain DBAPIError.
    cause = getattr(getattr(exc, "orig", None), "__cause__", None)
    return isinstance(exc, DataError) or isinstance(cause, asyncpg.exceptions.DataError)


def _values(event: audit_pb2.AuditEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "workspace_id": event.workspace_id,
        "occurred_at": from_timestamp(event.occur_time),
        "actor": event.actor,
        "token_id": event.token_id,
        "role": event.role,
        "service": event.service,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "version_before": event.version_before,
        "version_after": event.version_after,
        "request_id": event.request_id,
        "details": dict(event.details),
    }


def to_proto(row: Any) -> audit_pb2.AuditEvent:
    """The API form of a stored entry."""
    return audit_pb2.AuditEvent(
        event_id=row.id,
        occur_time=to_timestamp(row.occurred_at),
        workspace_id=row.workspace_id,
        actor=row.actor,
        token_id=row.token_id,
        role=row.role,
        service=row.service,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        version_before=row.version_before,
        version_after=row.version_after,
        request_id=row.request_id,
        details={str(k): str(v) for k, v in (row.details or {}).items()},
    )


# Every column but the insertion order `seq` (the sequence fills it).
_ENTRY_COLUMNS = tuple(c.name for c in db.audit_events.c if c.name != "seq")
# One of definitions' own entries, built once: its bind parameters are `audit_<column>` (see
# entry_params), so it can ride as a CTE on the insert of the change it records.
_ENTRY = pg_insert(db.audit_events).values({c: bindparam(f"audit_{c}") for c in _ENTRY_COLUMNS})
ENTRY_CTE = _ENTRY.cte("audit_entry")


def entry_params(caller: Principal, change: Change) -> dict[str, Any]:
    """The bind parameters of the entry for one of definitions' own mutations."""
    values = _values(audit_event(SERVICE, change, caller))
    return {f"audit_{c}": values[c] for c in _ENTRY_COLUMNS}


async def record(conn: AsyncConnection, caller: Principal, change: Change) -> None:
    """Append the entry for one of definitions' own mutations, in its transaction."""
    await conn.execute(_ENTRY, entry_params(caller, change))


def _entries(msg: Msg) -> list[audit_pb2.AuditEvent]:
    """The entries of an AUDIT message (DecodeError when it holds none that can be stored)."""
    if (msg.headers or {}).get(BATCH_HEADER):
        events = list(audit_pb2.AuditBatch.FromString(msg.data).events)
    else:
        events = [audit_pb2.AuditEvent.FromString(msg.data)]
    if not events or any(not e.event_id or not e.workspace_id for e in events):
        raise DecodeError("an entry lacks event_id or workspace_id")
    return events


@dataclass(frozen=True)
class AuditFilter:
    """What ListAuditEvents narrows the log to (empty or None: no narrowing)."""

    actor: str = ""
    target_type: str = ""
    target_id: str = ""
    action: str = ""
    start: datetime | None = None
    end: datetime | None = None


class AuditLog:
    """Stores entries from the AUDIT stream and lists a workspace's log."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # One entry the table cannot hold fails its whole batch (and a batch's error does not
        # say which): each entry of a failed batch is then stored alone, with its own answer.
        self._batcher: Batcher[audit_pb2.AuditEvent, bool | None] = Batcher(
            self._store_many, max_size=IN_FLIGHT, alone=self.store
        )

    async def store(self, event: audit_pb2.AuditEvent) -> bool:
        """Insert one entry unless already stored; True when it was new."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                pg_insert(db.audit_events)
                .values(_values(event))
                .on_conflict_do_nothing(index_elements=["id"])
            )
        return bool(result.rowcount)

    async def _store_many(self, events: list[audit_pb2.AuditEvent]) -> list[bool | None]:
        """Insert entries not already stored, all in one transaction."""
        async with self._engine.begin() as conn:
            await conn.execute(
                pg_insert(db.audit_events).on_conflict_do_nothing(index_elements=["id"]),
                [_values(e) for e in events],
            )
        # An executemany does not say which rows were new (None: not known).
        return [None] * len(events)

    async def store_batched(self, event: audit_pb2.AuditEvent) -> None:
        """Store one entry with those arriving at the same time (DataError: it never fits)."""
        await self._batcher.submit(event)

    async def handle(self, msg: Msg) -> None:
        """One AUDIT message (an entry, or a batch of them): stored then acked.

        Unreadable messages are terminated, and so are entries the table can never hold;
        any other failure redelivers the message (entries already stored stay single).
        """
        try:
            events = _entries(msg)
        except DecodeError as exc:
            log.error(
                "audit: unreadable message on %s (%d bytes), terminated: %s",
                msg.subject,
                len(msg.data),
                exc,
            )
            await msg.term()
            return
        results = await asyncio.gather(
            *(self.store_batched(e) for e in events), return_exceptions=True
        )
        retry = False
        for event, result in zip(events, results, strict=True):
            if not isinstance(result, BaseException):
                continue
            if isinstance(result, DBAPIError) and never_fits(result):
                # A value the table cannot hold never will: retrying would only loop.
                log.error(
                    "audit: event %s cannot be stored, dropped",
                    event.event_id,
                    exc_info=result,
                )
                continue
            log.warning("audit: storing %s failed; retrying", event.event_id, exc_info=result)
            retry = True
        if not retry:
            await msg.ack()
            return
        deliveries = 1
        with contextlib.suppress(Exception):
            deliveries = int(msg.metadata.num_delivered or 1)
        await msg.nak(delay=_BACKOFF.delay(deliveries))

    def consumer(self, js: JetStreamContext) -> Callable[[asyncio.Event], Awaitable[None]]:
        """The background loop storing every service's entries (retries without limit)."""

        async def run(stop: asyncio.Event) -> None:
            sub = await bus.pull_subscription(
                js,
                subject=AUDIT_STREAM.subjects[0],
                durable=DURABLE,
                stream=AUDIT_STREAM.name,
                max_deliver=-1,
            )
            try:
                await bus.consume(sub, self.handle, stop, max_in_flight=IN_FLIGHT)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

        return run

    async def list(
        self, caller: Principal, where: AuditFilter, *, size: int, token: str
    ) -> tuple[list[Any], str]:
        """A page of the caller's workspace log, newest first."""
        if where.start is not None and where.end is not None and where.end <= where.start:
            raise ValidationFailed([Violation("end_time", "must be after start_time")])
        t = db.audit_events
        limit = page_size(size)
        query = select(*t.c).where(t.c.workspace_id == caller.workspace_id)
        for column, value in (
            (t.c.actor, where.actor),
            (t.c.target_type, where.target_type),
            (t.c.target_id, where.target_id),
            (t.c.action, where.action),
        ):
            if value:
                query = query.where(column == value)
        if where.start is not None:
            query = query.where(t.c.occurred_at >= where.start)
        if where.end is not None:
            query = query.where(t.c.occurred_at < where.end)
        if token:
            cursor = decode_page_token(token, keys={"t": str, "s": int})
            try:
                at = datetime.fromisoformat(cursor["t"])
            except ValueError as exc:
                raise ValidationFailed([Violation("page_token", "malformed page token")]) from exc
            query = query.where(
                or_(t.c.occurred_at < at, and_(t.c.occurred_at == at, t.c.seq < cursor["s"]))
            )
        async with self._engine.connect() as conn:
            rows = list(
                (
                    await conn.execute(
                        query.order_by(t.c.occurred_at.desc(), t.c.seq.desc()).limit(limit + 1)
                    )
                ).all()
            )
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_token = encode_page_token({"t": last.occurred_at.isoformat(), "s": last.seq})
        return rows, next_token
