"""Definition events survive long outages and poison messages never block the consumer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import nats
import nats.js.errors
import sqlalchemy as sa
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.db import create_engine
from autom.devstack.eventually import assert_eventually
from autom.scheduler import db, store
from autom.scheduler.events import DEAD_LETTER_SUBJECT, DEFINITIONS_DURABLE, DefinitionEvents
from autom.scheduler.service import SchedulerService

MakeEvent = Callable[..., Any]


def _server_and_name(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base.replace("postgresql+asyncpg://", "postgresql://"), name


async def test_definition_event_outlives_a_long_database_outage_then_applies(
    start_scheduler: Any, database_url: str, nats_url: str, make_event: MakeEvent
) -> None:
    server, migrated = _server_and_name(database_url)
    # The scheduler's database does not exist yet: every delivery fails as in an outage.
    later = f"{migrated}_later"
    later_url = f"{database_url.rpartition('/')[0]}/{later}"
    await start_scheduler(
        database_url=later_url,
        scheduler_event_retry_base_s=0.02,
        scheduler_event_retry_cap_s=0.1,
    )
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        event = make_event(
            "created", automation_id="survivor", version=1, config={"cron": "0 9 * * *"}
        )
        await js.publish("automations.definitions.created", event.SerializeToString())

        async def redelivered_past_the_old_limit() -> None:
            try:
                info = await js.consumer_info("AUTOM_DEFINITIONS", DEFINITIONS_DURABLE)
            except nats.js.errors.NotFoundError as exc:
                # The scheduler binds its durable in a background loop, after it serves.
                raise AssertionError("the scheduler has not bound its consumer yet") from exc
            assert info.delivered is not None and (info.delivered.consumer_seq or 0) >= 12

        await assert_eventually(redelivered_past_the_old_limit, timeout=30)
    finally:
        await nc.close()

    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{later}" TEMPLATE "{migrated}"')
    finally:
        await admin.close()
    engine = create_engine(url=later_url, application_name="scheduler-test")

    async def applied() -> None:
        async with engine.connect() as conn:
            ids = (await conn.execute(sa.select(db.schedules.c.id))).scalars().all()
        assert list(ids) == ["survivor:tick"]

    try:
        await assert_eventually(applied, timeout=15)
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(f"{server}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{later}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_undecodable_definition_event_is_dead_lettered_and_terminated(
    start_scheduler: Any, nats_url: str, make_event: MakeEvent
) -> None:
    await start_scheduler()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        # Standing in for its owner, the executor.
        await bus.ensure_streams(js, (bus.DEAD_LETTERS_STREAM,))
        poison = b"\xff\xff\xff poison " + uuid.uuid4().hex.encode()
        await js.publish("automations.definitions.created", poison)
        sub = await js.pull_subscribe(DEAD_LETTER_SUBJECT, durable=f"t-{uuid.uuid4().hex[:8]}")

        async def dead_lettered() -> None:
            msgs = await sub.fetch(1, timeout=0.5)
            assert [m.data for m in msgs] == [poison]
            headers = msgs[0].headers or {}
            assert headers.get("Autom-Origin-Subject") == "automations.definitions.created"
            assert "undecodable" in headers.get("Autom-Reason", "")

        await assert_eventually(dead_lettered, timeout=10)

        async def terminated() -> None:
            info = await js.consumer_info("AUTOM_DEFINITIONS", DEFINITIONS_DURABLE)
            assert info.num_ack_pending == 0 and info.num_redelivered == 0
            assert info.delivered is not None and info.delivered.consumer_seq == 1

        await assert_eventually(terminated, timeout=10)
    finally:
        await nc.close()


async def _handle_in_order(
    handler: DefinitionEvents,
    nats_url: str,
    events: list[tuple[str, events_pb2.DefinitionEvent]],
    on_handled: Callable[[str], None] = lambda _: None,
) -> None:
    """Publish `(kind, event)` pairs to JetStream, then hand their messages to `handler`."""
    ours = {event.automation_id for _, event in events}
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.DEFINITIONS_STREAM,))
        sub = await js.pull_subscribe(
            "automations.definitions.>",
            durable=f"t-{uuid.uuid4().hex[:8]}",
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )
        for kind, event in events:
            await js.publish(f"automations.definitions.{kind}", event.SerializeToString())
        handled: list[str] = []
        while len(handled) < len(events):
            for msg in await sub.fetch(1, timeout=10):
                event = events_pb2.DefinitionEvent.FromString(msg.data)
                if event.automation_id not in ours:  # another test's
                    await msg.ack()
                    continue
                current = f"{msg.subject.rsplit('.', 1)[1]} {event.automation_id}"
                on_handled(current)
                await handler.handle(msg)
                handled.append(current)
        assert handled == [f"{kind} {event.automation_id}" for kind, event in events]
    finally:
        await nc.close()


async def test_only_an_active_schedule_wakes_the_due_loop(
    service: SchedulerService, nats_url: str, make_event: MakeEvent
) -> None:
    woken: list[str] = []
    current = ""

    def handling(what: str) -> None:
        nonlocal current
        current = what

    handler = DefinitionEvents(service, lambda: woken.append(current))
    a, b = f"wake-{uuid.uuid4().hex[:8]}", f"none-{uuid.uuid4().hex[:8]}"
    cases = [
        ("created", a, {"cron": "0 9 * * *"}),  # a new schedule may be due before the next tick
        ("paused", a, {"cron": "0 9 * * *"}),
        ("resumed", a, {"cron": "0 9 * * *"}),
        ("created", b, None),  # no schedule trigger
        ("updated", b, None),
        ("deleted", a, None),
    ]
    events = [
        (kind, make_event(kind, automation_id=automation_id, version=1, config=config))
        for kind, automation_id, config in cases
    ]
    await _handle_in_order(handler, nats_url, events, handling)
    assert woken == [f"created {a}", f"resumed {a}"]


async def test_a_create_without_a_schedule_stores_nothing_and_later_changes_still_apply(
    service: SchedulerService, engine: AsyncEngine, nats_url: str, make_event: MakeEvent
) -> None:
    handler = DefinitionEvents(service, lambda: None)
    aid = f"plain-{uuid.uuid4().hex[:8]}"
    created = make_event("created", automation_id=aid, version=1, config=None)
    await _handle_in_order(handler, nats_url, [("created", created)])
    async with engine.connect() as conn:
        assert await store.automation_state(conn, aid) is None
        assert await store.schedules_of(conn, aid) == {}
    # A schedule added later is applied; the create delivered again after it changes nothing.
    updated = make_event("updated", automation_id=aid, version=2, config={"cron": "0 9 * * *"})
    await _handle_in_order(handler, nats_url, [("updated", updated), ("created", created)])
    async with engine.connect() as conn:
        state = await store.automation_state(conn, aid)
        assert state is not None and state.revision == updated.revision
        assert list(await store.schedules_of(conn, aid)) == ["tick"]
