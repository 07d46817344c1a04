"""The transactional outbox relay against real PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.core import bus
from autom.core.db import create_engine, service_metadata
from autom.devstack.eventually import assert_eventually
from autom.devstack.streams import read_stream

METADATA = service_metadata("core_test")
OUTBOX = bus.outbox_table(METADATA)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url=database_url, application_name="core-test", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS core_test"))
        await conn.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


async def test_committed_rows_are_published_once_and_rolled_back_ones_never(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js)
        await bus.ensure_streams(js)  # idempotent
        async with engine.begin() as conn:
            await conn.execute(
                insert(OUTBOX).values(bus.outbox_row("automations.runs.test", "m-1", b"one"))
            )
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(OUTBOX).values(bus.outbox_row("automations.runs.test", "m-2", b"two"))
                )
                raise RuntimeError("roll back")
        relay = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js)
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
        # A row republished after a crash between publish and commit is deduplicated.
        async with engine.begin() as conn:
            await conn.execute(
                insert(OUTBOX).values(bus.outbox_row("automations.runs.test", "m-1", b"one"))
            )
        assert await relay.publish_pending() == 1
        msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
        assert [m.data for m in msgs] == [b"one"]
    finally:
        await nc.close()


async def test_published_rows_are_pruned_after_the_keep_period(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js)
        old = datetime.now(UTC) - timedelta(days=2)
        async with engine.begin() as conn:
            await conn.execute(
                insert(OUTBOX).values(
                    {**bus.outbox_row("automations.runs.a", "a", b"a"), "published_at": old}
                )
            )
            await conn.execute(
                insert(OUTBOX).values(bus.outbox_row("automations.runs.b", "b", b"b"))
            )
        relay = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js)
        assert await relay.prune_published() == 1
        async with engine.connect() as conn:
            left = (await conn.execute(select(OUTBOX.c.msg_id))).scalars().all()
        assert left == ["b"]
    finally:
        await nc.close()


class _ConcurrentCommit(bus.OutboxRelay):
    """A relay during whose first pass another transaction commits a row and notifies."""

    def __init__(self, *, engine: AsyncEngine, **kwargs: Any) -> None:
        super().__init__(engine=engine, **kwargs)
        self.passes = 0

    async def publish_pending(self) -> int:
        published = await super().publish_pending()
        self.passes += 1
        if self.passes == 1:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(OUTBOX).values(bus.outbox_row("automations.runs.t", "late", b"late"))
                )
            self.notify()
        return published


async def test_a_notify_during_a_pass_is_not_lost(engine: AsyncEngine, nats_url: str) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    stop = asyncio.Event()
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        async with engine.begin() as conn:
            await conn.execute(
                insert(OUTBOX).values(bus.outbox_row("automations.runs.t", "first", b"first"))
            )
        # The poll interval is far longer than the test: only the notify can wake the relay.
        relay = _ConcurrentCommit(engine=engine, table=OUTBOX, js=js, poll_interval=3600.0)
        task = asyncio.create_task(relay.run(stop))

        async def both_published() -> None:
            msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
            assert [m.data for m in msgs] == [b"first", b"late"]

        await assert_eventually(both_published, timeout=10)
        stop.set()
        await task
    finally:
        stop.set()
        await nc.close()


async def test_relay_options_delete_release_later_and_stamp_in_the_same_transaction(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    stamped: list[tuple[list[str], datetime]] = []

    async def stamp(conn: AsyncConnection, msg_ids: list[str], acked: datetime) -> None:
        assert conn.in_transaction()
        stamped.append((msg_ids, acked))

    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        later = datetime.now(UTC) + timedelta(hours=1)
        async with engine.begin() as conn:
            await conn.execute(
                insert(OUTBOX).values(bus.outbox_row("automations.runs.t", "now", b"n"))
            )
            await conn.execute(
                insert(OUTBOX).values(
                    {**bus.outbox_row("automations.runs.t", "later", b"l"), "created_at": later}
                )
            )
        relay = bus.OutboxRelay(
            engine=engine,
            table=OUTBOX,
            js=js,
            keep_published=None,
            release_at_created=True,
            on_published=stamp,
        )
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
        assert [ids for ids, _ in stamped] == [["now"]]
        async with engine.connect() as conn:
            left = (await conn.execute(select(OUTBOX.c.msg_id))).scalars().all()
        assert left == ["later"]  # the published row is deleted, the planned one waits
        msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
        assert [m.data for m in msgs] == [b"n"]
    finally:
        await nc.close()


def test_audit_entries_are_combined_up_to_the_count_and_size_caps() -> None:
    from types import SimpleNamespace

    from autom.api.events.v1 import audit_pb2
    from autom.core import audit

    def row(i: int, details: str = "") -> SimpleNamespace:
        event = audit_pb2.AuditEvent(event_id=f"e{i}", workspace_id="w", details={"d": details})
        return SimpleNamespace(
            id=i, subject="automations.audit.x", msg_id=f"e{i}", payload=event.SerializeToString()
        )

    many = [row(i) for i in range(audit.BATCH_MAX * 2 + 1)]
    sizes = [m[3].get(audit.BATCH_HEADER) for m in audit.combine_entries(many)]
    # The last one alone is an AuditEvent as it always was.
    assert sizes == [str(audit.BATCH_MAX), str(audit.BATCH_MAX), None]
    big = "x" * (audit.BATCH_MAX_BYTES // 3)
    messages = audit.combine_entries([row(i, big) for i in range(5)])
    assert [m[3].get(audit.BATCH_HEADER) for m in messages] == ["2", "2", None]
    assert all(len(m[1]) <= audit.BATCH_MAX_BYTES + 64 for m in messages)
    assert [m[2] for m in messages] == ["e0+2", "e2+2", "e4"]
    batch = audit_pb2.AuditBatch.FromString(messages[1][1])
    assert [e.event_id for e in batch.events] == ["e2", "e3"]
