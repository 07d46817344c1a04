"""High availability: two schedulers, one SIGKILLed repeatedly, fire each nominal time once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import sqlalchemy as sa
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import create_async_engine

from autom.api.common.v1 import definition_pb2
from autom.api.events.v1 import events_pb2
from autom.core.bus import DEFINITIONS_STREAM, MSG_ID, ensure_streams
from autom.core.db import asyncpg_url
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.devstack.eventually import assert_eventually
from autom.devstack.streams import read_stream
from autom.devstack.testing import service_env

SCHEDULES = 5
RUN_FOR_S = 14.0
KILL_EVERY_S = 2.5


async def publish_created(js: JetStreamContext, automation_id: str, config: dict[str, Any]) -> None:
    """Publish the DefinitionEvent the definitions service would for a new automation."""
    event = events_pb2.DefinitionEvent(
        event_id=str(uuid.uuid4()),
        type=events_pb2.DEFINITION_EVENT_TYPE_CREATED,
        workspace_id="default",
        automation_id=automation_id,
        version=1,
        active=True,
        triggers=[
            definition_pb2.Trigger(id="tick", type="schedule", config=dict_to_struct(config))
        ],
        created_by="user:alice",
        occur_time=to_timestamp(datetime.now(UTC)),
        name=automation_id,
    )
    await js.publish(
        "automations.definitions.created",
        event.SerializeToString(),
        headers={MSG_ID: event.event_id},
    )


async def stream_fires(js: JetStreamContext) -> list[events_pb2.FireEvent]:
    """Every fire event on the stream now, in stream order."""
    msgs = await read_stream(js, "AUTOM_FIRES", "automations.fires.>")
    return [events_pb2.FireEvent.FromString(m.data) for m in msgs]


async def spawn(database_url: str, nats_url: str, signing_key: str) -> asyncio.subprocess.Process:
    """`python -m autom.scheduler` as a real process (so it can be SIGKILLed)."""
    env = {
        **os.environ,
        "AUTOM_DATABASE_URL": database_url,
        "AUTOM_NATS_URL": nats_url,
        **service_env("scheduler", signing_key),
        "AUTOM_GRPC_PORT": "0",
        "AUTOM_SCHEDULER_RESYNC_ON_START": "false",
        "AUTOM_LOG_LEVEL": "WARNING",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.scheduler",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_two_schedulers_with_one_sigkilled_fire_every_nominal_time_exactly_once(
    start_app: Any, database_url: str, nats_url: str, signing_key: str
) -> None:
    await start_app("scheduler", scheduler_resync_on_start=False)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # The test publishes definition events itself, standing in for the stream's owner.
    await ensure_streams(js, (DEFINITIONS_STREAM,))
    engine = create_async_engine(asyncpg_url(database_url))
    victim = await spawn(database_url, nats_url, signing_key)
    kills = 0
    try:
        for i in range(SCHEDULES):
            await publish_created(
                js, f"ha-{i}", {"cron": "* * * * * *", "catchup": "all", "catchup_window": "1h"}
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUN_FOR_S
        while loop.time() < deadline:
            await asyncio.sleep(KILL_EVERY_S)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            kills += 1
            victim = await spawn(database_url, nats_url, signing_key)
        cutoff = datetime.now(UTC) - timedelta(seconds=1)

        async def settled() -> list[Any]:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.text(
                            "SELECT fire_id, schedule_id, scheduled_for, published_at"
                            " FROM scheduler.fires WHERE scheduled_for <= :c"
                        ),
                        {"c": cutoff},
                    )
                ).all()
            assert rows and all(r.published_at is not None for r in rows)
            return list(rows)

        rows = await assert_eventually(settled, timeout=15)
        events = [e for e in await stream_fires(js) if e.scheduled_for.ToDatetime(UTC) <= cutoff]
    finally:
        if victim.returncode is None:
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
        await nc.close()
        await engine.dispose()

    assert kills >= 4
    by_schedule: dict[str, list[datetime]] = defaultdict(list)
    for row in rows:
        by_schedule[row.schedule_id].append(row.scheduled_for)
    assert len(by_schedule) == SCHEDULES
    for sid, nominal in by_schedule.items():
        nominal.sort()
        expected = [
            nominal[0] + timedelta(seconds=s)
            for s in range(int((nominal[-1] - nominal[0]).total_seconds()) + 1)
        ]
        assert nominal == expected, f"{sid}: gaps in {nominal}"
        assert len(nominal) >= RUN_FOR_S - 3
    counts = Counter(e.fire_id for e in events)
    assert [fid for fid, n in counts.items() if n > 1] == []
    assert set(counts) == {r.fire_id for r in rows}
