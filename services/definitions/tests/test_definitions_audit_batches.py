"""Audit entries committed together travel as one message and are stored once each."""

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
from autom.definitions.audit import AuditLog
from autom.devstack.eventually import assert_eventually
from autom.devstack.streams import read_stream

# The sending side: any service's audit outbox (a schema of the test's own).
OUTBOX = audit_outbox_table(service_metadata("audit_batch_test"))


def _event(event_id: str, actor: str = "user:alice") -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        event_id=event_id,
        workspace_id="default",
        actor=actor,
        service="executor",
        action="run.start",
        target_type="run",
        target_id=f"run-{event_id}",
    )


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


async def _consuming(engine: AsyncEngine, js: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.ensure_future(AuditLog(engine).consumer(js)(stop))


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
    stop, task = await _consuming(engine, js)
    try:

        async def all_stored() -> None:
            assert await _stored(engine) == sorted(e.event_id for _, e in entries)
            info = await js.consumer_info(bus.AUDIT_STREAM.name, "definitions-audit")
            assert info.num_ack_pending == 0 and info.num_pending == 0, info

        await assert_eventually(all_stored, timeout=30)
    finally:
        stop.set()
        await task


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
    stop, task = await _consuming(engine, js)
    try:

        async def settled() -> None:
            assert await _stored(engine) == sorted(e.event_id for e in [*good, after])
            info = await js.consumer_info(bus.AUDIT_STREAM.name, "definitions-audit")
            assert info.num_ack_pending == 0 and info.num_pending == 0, info

        await assert_eventually(settled, timeout=30)
    finally:
        stop.set()
        await task
