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


async def _commit(engine: AsyncEngine, *rows: dict[str, Any]) -> None:
    async with engine.begin() as conn:
        for row in rows:
            await conn.execute(insert(OUTBOX).values(row))


async def _unpublished(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        query = select(OUTBOX.c.msg_id).where(OUTBOX.c.published_at.is_(None))
        return list((await conn.execute(query.order_by(OUTBOX.c.id))).scalars())


async def test_rows_handed_over_are_published_and_marked_without_a_pass(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        rows = [bus.outbox_row("automations.runs.t", f"h-{i}", b"%d" % i) for i in range(3)]
        await _commit(engine, *rows)
        relay = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js)
        relay.hand_over(rows)
        assert await relay.publish_handed() == 3
        msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
        assert [m.data for m in msgs] == [b"0", b"1", b"2"]
        assert await _unpublished(engine) == []
        # Marked as published (kept a while), so no pass takes them again.
        assert await relay.publish_pending() == 0
        assert await relay.publish_handed() == 0  # nothing left to hand
    finally:
        await nc.close()


async def test_a_handed_row_whose_publish_fails_is_left_for_the_next_pass(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        row = bus.outbox_row("core_test.handover.x", "lonely", b"x")
        await _commit(engine, row)
        relay = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js, ack_timeout=2.0)
        relay.hand_over([row])
        # No stream holds the subject yet: nothing acknowledges the publish.
        assert await relay.publish_handed() == 0
        assert await _unpublished(engine) == ["lonely"]
        await bus.ensure_streams(
            js, (bus.StreamSpec("CORE_TEST_HANDOVER", ("core_test.handover.>",)),)
        )
        assert await relay.publish_pending() == 1
        msgs = await read_stream(js, "CORE_TEST_HANDOVER", "core_test.handover.>")
        assert [m.data for m in msgs] == [b"x"]
    finally:
        await nc.close()


async def test_a_row_a_pass_published_first_is_stored_and_marked_once(
    engine: AsyncEngine, nats_url: str
) -> None:
    stamped: list[list[str]] = []

    async def stamp(conn: AsyncConnection, msg_ids: list[str], acked: datetime) -> None:
        stamped.append(msg_ids)

    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        row = bus.outbox_row("automations.runs.t", "both", b"b")
        await _commit(engine, row)
        relay = bus.OutboxRelay(
            engine=engine, table=OUTBOX, js=js, keep_published=None, on_published=stamp
        )
        assert await relay.publish_pending() == 1
        relay.hand_over([row])
        assert await relay.publish_handed() == 0  # the pass had marked (deleted) it
        msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
        assert [m.data for m in msgs] == [b"b"]
        assert stamped == [["both"]]
    finally:
        await nc.close()


async def test_the_running_relay_publishes_a_handed_row_at_once_and_deletes_it(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    stop = asyncio.Event()
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        # The poll interval is far longer than the test: only the hand-over can wake the relay.
        relay = bus.OutboxRelay(
            engine=engine, table=OUTBOX, js=js, keep_published=None, poll_interval=3600.0
        )
        task = asyncio.create_task(relay.run(stop))
        row = bus.outbox_row("automations.runs.t", "woken", b"w")
        await _commit(engine, row)
        relay.hand_over([row])

        async def published_and_deleted() -> None:
            msgs = await read_stream(js, "AUTOM_RUNS", "automations.runs.>")
            assert [m.data for m in msgs] == [b"w"]
            async with engine.connect() as conn:
                assert (await conn.execute(select(OUTBOX.c.msg_id))).scalars().all() == []

        await assert_eventually(published_and_deleted, timeout=10)
        stop.set()
        await task
    finally:
        stop.set()
        await nc.close()


async def test_rows_released_later_or_combined_cannot_be_handed_over(
    engine: AsyncEngine, nats_url: str
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        later = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js, release_at_created=True)
        combined = bus.OutboxRelay(engine=engine, table=OUTBOX, js=js, combine=lambda rows: [])
        for relay in (later, combined):
            with pytest.raises(ValueError):
                relay.hand_over([bus.outbox_row("automations.runs.t", "x", b"x")])
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
