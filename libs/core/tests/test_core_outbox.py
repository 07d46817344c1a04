"""The transactional outbox relay against real PostgreSQL and JetStream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core import bus
from autom.core.db import create_engine, service_metadata
from autom.devstack.streams import read_stream

METADATA = service_metadata("core_test")
OUTBOX = bus.outbox_table(METADATA)


@pytest.fixture
async def engine(database_url: str) -> AsyncEngine:
    engine = create_engine(url=database_url, application_name="core-test", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS core_test"))
        await conn.run_sync(METADATA.create_all)
    yield engine  # type: ignore[misc]
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
