"""Entries from the AUDIT stream are stored together; one that never fits spoils no other."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from autom.api.events.v1 import audit_pb2
from autom.core.db import create_engine
from autom.definitions import db
from autom.definitions.audit import AuditLog, never_fits


def _event(event_id: str, actor: str = "user:alice") -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        event_id=event_id,
        workspace_id="default",
        actor=actor,
        service="executor",
        action="run.start",
        target_type="run",
        target_id=f"run-{event_id}",
        details={"automation_id": "a1"},
    )


async def test_concurrent_entries_are_stored_once_each_and_a_bad_one_alone_is_refused(
    database_url: str,
) -> None:
    engine = create_engine(url=database_url, pool_size=2, application_name="test-audit")
    try:
        log = AuditLog(engine)
        good = [_event(f"e{i}") for i in range(30)]
        bad = _event("too-long", actor="x" * 300)
        results = await asyncio.gather(
            *(log.store_batched(e) for e in [*good[:15], bad, *good[15:]]),
            return_exceptions=True,
        )
        assert [type(r) for r in results].count(type(None)) == 30
        assert isinstance(results[15], Exception)
        assert never_fits(results[15])
        # A redelivered entry finds its row: stored once, whatever the batch.
        await asyncio.gather(*(log.store_batched(e) for e in good[:5]))
        async with engine.connect() as conn:
            ids = (await conn.execute(sa.select(db.audit_events.c.id))).scalars().all()
        assert sorted(ids) == sorted(e.event_id for e in good)
    finally:
        await engine.dispose()
