"""Downtime longer than JetStream's dedupe window: catch-up policy honoured, no duplicates."""

from __future__ import annotations

import asyncio
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
from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.bus import DEFINITIONS_STREAM, MSG_ID, ensure_streams
from autom.core.db import asyncpg_url
from autom.core.grpcserver import GrpcApp, channel
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.devstack.eventually import assert_eventually
from autom.devstack.streams import read_stream
from autom.scheduler.settings import SchedulerSettings

DEDUPE_WINDOW_S = 1.0
DOWNTIME_S = 4.0
SETTINGS = {
    "scheduler_resync_on_start": False,
    "scheduler_fires_dedupe_window_s": DEDUPE_WINDOW_S,
    "scheduler_late_tolerance_s": 0.5,
}


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


async def stream_fire_ids(js: JetStreamContext) -> list[str]:
    """The fire id of every message on the fires stream now."""
    msgs = await read_stream(js, "AUTOM_FIRES", "automations.fires.>")
    return [events_pb2.FireEvent.FromString(m.data).fire_id for m in msgs]


async def stop(app: GrpcApp) -> None:
    """Stop an app now (the fixture then skips it)."""
    await app.stop()
    app.bound_port = 0


async def test_restart_after_the_dedupe_window_honours_catchup_without_duplicates(
    start_app: Any, database_url: str, nats_url: str, owner_token: str
) -> None:
    engine = create_async_engine(asyncpg_url(database_url))
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # The test publishes definition events itself, standing in for the stream's owner.
    await ensure_streams(js, (DEFINITIONS_STREAM,))

    async def fires() -> dict[str, list[Any]]:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT fire_id, schedule_id, scheduled_for, kind, published_at"
                        " FROM scheduler.fires WHERE published_at IS NOT NULL"
                        " ORDER BY scheduled_for"
                    )
                )
            ).all()
        out: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            out[row.schedule_id.split(":")[0]].append(row)
        return out

    try:
        first = await start_app("scheduler", **SETTINGS)
        info = await js.stream_info("AUTOM_FIRES")
        assert info.config.duplicate_window == DEDUPE_WINDOW_S
        for policy, cron in (("none", "*/3"), ("latest", "*/3"), ("all", "*")):
            await publish_created(
                js, policy, {"cron": f"{cron} * * * * *", "catchup": policy, "catchup_window": "1h"}
            )

        async def firing() -> None:
            current = await fires()
            assert all(len(current[p]) >= 1 for p in ("none", "latest", "all")), current

        await assert_eventually(firing, timeout=10)
        await stop(first)
        stopped = datetime.now(UTC)
        # The outage itself: longer than the dedupe window, ending 1.2 s after a */3
        # instant so that instant is missed (older than the late tolerance) at restart.
        resume_at = stopped.timestamp() + DOWNTIME_S
        resume_at += (1.2 - resume_at % 3) % 3
        await asyncio.sleep(resume_at - datetime.now(UTC).timestamp())
        restarted = datetime.now(UTC)
        latest_missed = datetime.fromtimestamp(int(resume_at) - 1, UTC)
        second = await start_app("scheduler", **SETTINGS)

        async def caught_up() -> dict[str, list[Any]]:
            current = await fires()
            for policy in ("none", "latest", "all"):
                after = [r for r in current[policy] if r.scheduled_for > restarted]
                assert len(after) >= 1, policy
            return current

        settled = await assert_eventually(caught_up, timeout=10)
        stub = pb_grpc.SchedulerServiceStub(channel(second.address, owner_token))
        described = {
            p: (await stub.DescribeSchedule(pb.DescribeScheduleRequest(schedule_id=f"{p}:tick")))
            for p in ("none", "latest", "all")
        }
        # The database key, not JetStream, keeps a re-fired range from firing twice.
        backfill = await stub.Backfill(
            pb.BackfillRequest(
                schedule_id="all:tick",
                start_time=to_timestamp(settled["all"][0].scheduled_for - timedelta(seconds=0.5)),
                end_time=to_timestamp(restarted),
            )
        )
        await stop(second)
        final = await fires()
        stream = await stream_fire_ids(js)
    finally:
        await nc.close()
        await engine.dispose()

    assert backfill.fires_created == 0 and backfill.already_fired >= DOWNTIME_S
    counts = Counter(stream)
    assert [fid for fid, n in counts.items() if n > 1] == []
    assert set(counts) == {r.fire_id for rows in final.values() for r in rows}

    def seconds(rows: list[Any]) -> list[datetime]:
        return [r.scheduled_for for r in rows]

    everything = seconds(final["all"])
    span = int((everything[-1] - everything[0]).total_seconds())
    assert everything == [everything[0] + timedelta(seconds=s) for s in range(span + 1)]
    assert any(r.kind == "catchup" for r in final["all"])

    def missing(rows: list[Any]) -> list[datetime]:
        times = seconds(rows)
        span = int((times[-1] - times[0]).total_seconds())
        every = [times[0] + timedelta(seconds=s) for s in range(0, span + 1, 3)]
        return [t for t in every if t not in times]

    # Fires due within the handover after the stop were handed to the executors before it.
    handover = timedelta(seconds=SchedulerSettings.model_fields["scheduler_handover_s"].default)

    def in_outage(rows: list[Any]) -> list[datetime]:
        return [t for t in seconds(rows) if stopped + handover < t < restarted]

    # none: nothing of the outage fired; every instant of it counted as missed.
    assert in_outage(final["none"]) == []
    assert {r.kind for r in final["none"]} == {"scheduled"}
    assert len(missing(final["none"])) == described["none"].schedule.missed_count >= 1
    # latest: only the newest missed instant fired, as a catch-up; the rest counted.
    assert in_outage(final["latest"]) == [latest_missed]
    catchups = [r.scheduled_for for r in final["latest"] if r.kind == "catchup"]
    assert catchups == [latest_missed]
    assert len(missing(final["latest"])) == described["latest"].schedule.missed_count
    assert described["all"].schedule.missed_count == 0
