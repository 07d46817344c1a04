"""Entries from the AUDIT stream are stored together; one that never fits spoils no other.

Entries committed together travel as one message (an AuditBatch) and are stored once each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import audit_pb2
from autom.core import bus
from autom.core.audit import BATCH_HEADER, audit_outbox_table, audit_relay
from autom.core.bus import outbox_row
from autom.core.db import create_engine, service_metadata
from autom.definitions import db
from autom.definitions.audit import AuditLog, never_fits
from autom.devstack.eventually import assert_eventually
from autom.devstack.streams import read_stream


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


# The sending side of the batches below: any service's audit outbox (a schema of the test's own).
OUTBOX = audit_outbox_table(service_metadata("audit_batch_test"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url=database_url, application_name="audit-batch-test", pool_size=3)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS audit_batch_test"))
        await conn.run_sync(OUTBOX.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    nc = await bus.connect(nats_url, name="audit-batch-test")
    js = nc.jetstream()
    await bus.ensure_streams(js, (bus.AUDIT_STREAM,))
    yield js
    await nc.close()


async def _stored(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(db.audit_events.c.id).order_by(db.audit_events.c.id))
    return list(rows.scalars())


async def _consumed(engine: AsyncEngine, js: Any, expected: list[str]) -> None:
    """Run definitions' consumer until `expected` are stored and nothing is left to deliver."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(AuditLog(engine).consumer(js)(stop))
    try:

        async def settled() -> None:
            assert await _stored(engine) == sorted(expected)
            info = await js.consumer_info(bus.AUDIT_STREAM.name, "definitions-audit")
            assert info.num_ack_pending == 0 and info.num_pending == 0, info

        await assert_eventually(settled, timeout=30)
    finally:
        stop.set()
        await task


async def test_entries_committed_together_are_one_message_and_stored_once(
    engine: AsyncEngine, js: Any
) -> None:
    entries = [("automations.audit.executor", _event(f"e{i}")) for i in range(5)] + [
        ("automations.audit.scheduler", _event("s0"))
    ]
    entries += [("automations.audit.executor", _event(f"e{i}")) for i in range(5, 7)]
    async with engine.begin() as conn:
        for subject, event in entries:
            await conn.execute(
                insert(OUTBOX).values(
                    outbox_row(subject, event.event_id, event.SerializeToString())
                )
            )
    relay = audit_relay(engine, OUTBOX, js)
    assert await relay.publish_pending() == len(entries)
    msgs = await read_stream(js, bus.AUDIT_STREAM.name, "automations.audit.>")
    # Entries of one subject in a row share a message; a lone one goes as it always did.
    assert [(m.subject, (m.headers or {}).get(BATCH_HEADER)) for m in msgs] == [
        ("automations.audit.executor", "5"),
        ("automations.audit.scheduler", None),
        ("automations.audit.executor", "2"),
    ]
    assert [e.event_id for e in audit_pb2.AuditBatch.FromString(msgs[0].data).events] == [
        f"e{i}" for i in range(5)
    ]
    # The same entries grouped otherwise (a relay that crashed before deleting its rows and
    # found more of them later) are not stored twice.
    regrouped = audit_pb2.AuditBatch(events=[e for _, e in entries])
    await js.publish(
        "automations.audit.executor",
        regrouped.SerializeToString(),
        headers={BATCH_HEADER: str(len(entries)), bus.MSG_ID: "regrouped"},
    )
    await _consumed(engine, js, [e.event_id for _, e in entries])


async def test_a_batch_stores_what_fits_and_drops_only_what_never_will(
    engine: AsyncEngine, js: Any
) -> None:
    good = [_event(f"g{i}") for i in range(4)]
    batch = audit_pb2.AuditBatch(events=[*good[:2], _event("bad", actor="x" * 300), *good[2:]])
    await js.publish(
        "automations.audit.executor",
        batch.SerializeToString(),
        headers={BATCH_HEADER: "5", bus.MSG_ID: "with-a-bad-one"},
    )
    # Unreadable: terminated, and the stream goes on past it.
    await js.publish(
        "automations.audit.executor",
        b"\xff\xff not a batch",
        headers={BATCH_HEADER: "3", bus.MSG_ID: "garbage"},
    )
    after = _event("after")
    await js.publish("automations.audit.executor", after.SerializeToString())
    await _consumed(engine, js, [e.event_id for e in [*good, after]])
