"""Definitions drive the scheduler: edits take effect, pause stops, resume does not replay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.events.v1 import events_pb2
from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.auth import TokenSigner
from autom.core.grpcserver import GrpcApp, channel
from autom.core.protoconv import struct_to_dict
from autom.devstack.eventually import assert_eventually
from autom.scheduler.settings import SchedulerSettings


def definition(cron: str) -> definition_pb2.AutomationDefinition:
    raw = {
        "name": "ticker",
        "triggers": [
            {
                "type": "schedule",
                "config": {"cron": cron, "timezone": "Europe/Zurich", "catchup": "none"},
                "inputs": {"who": "zurich"},
            }
        ],
        "plan": [{"id": "greet", "action": "transform", "params": {"output": "hi"}}],
    }
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


class Fires:
    """Collects FireEvents from the fires stream as they are published."""

    def __init__(self) -> None:
        self.events: list[events_pb2.FireEvent] = []

    async def on_msg(self, msg: Any) -> None:
        self.events.append(events_pb2.FireEvent.FromString(msg.data))

    def nominal(self, *, version: int | None = None) -> list[datetime]:
        return [
            e.scheduled_for.ToDatetime(tzinfo=UTC)
            for e in self.events
            if version is None or e.automation_version == version
        ]


async def test_edit_takes_effect_pause_stops_and_resume_does_not_replay(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    definitions: GrpcApp = await start_app("definitions")
    scheduler: GrpcApp = await start_app("scheduler", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    sched = pb_grpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
    fires = Fires()
    nc = await nats.connect(nats_url)
    await nc.subscribe("automations.fires.>", cb=fires.on_msg)
    try:
        created = (
            await defs.CreateAutomation(
                dpb.CreateAutomationRequest(definition=definition("* * * * * *"))
            )
        ).automation
        schedule_id = f"{created.id}:schedule_0"

        async def fired(version: int, n: int) -> None:
            assert len(fires.nominal(version=version)) >= n, fires.nominal()

        await assert_eventually(lambda: fired(1, 2), timeout=10)
        first = fires.events[0]
        assert first.trigger_type == "schedule" and first.principal == "user:owner"
        assert struct_to_dict(first.inputs) == {"who": "zurich"}

        # Edit: every fire of the new version follows the new cron.
        await defs.UpdateAutomation(
            dpb.UpdateAutomationRequest(
                automation_id=created.id, version=1, definition=definition("*/2 * * * * *")
            )
        )
        await assert_eventually(lambda: fired(2, 2), timeout=10)
        assert all(t.second % 2 == 0 for t in fires.nominal(version=2))

        # Pause: nothing fires once the scheduler has seen it.
        await defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=created.id))

        async def disabled() -> None:
            described = await sched.DescribeSchedule(
                pb.DescribeScheduleRequest(schedule_id=schedule_id)
            )
            assert not described.schedule.enabled

        await assert_eventually(disabled, timeout=10)
        count = len(fires.events)
        await asyncio.sleep(3)  # the paused period itself
        assert len(fires.events) == count
        resumed_at = datetime.now(UTC)

        # Resume: the next fire is after the resume; the paused time is not replayed.
        await defs.ResumeAutomation(dpb.ResumeAutomationRequest(automation_id=created.id))
        before = len(fires.nominal(version=2))
        await assert_eventually(lambda: fired(2, before + 1), timeout=10)
        assert all(t > resumed_at for t in fires.nominal()[count:]), fires.nominal()[count:]
        described = await sched.DescribeSchedule(
            pb.DescribeScheduleRequest(schedule_id=schedule_id, recent_count=3)
        )
        assert described.schedule.enabled and described.schedule.cron == "*/2 * * * * *"
        # Recent fires include ones planned ahead (released at their time, unpublished yet).
        assert any(f.published_time.seconds > 0 for f in described.recent_fires)
    finally:
        await nc.close()


async def test_sync_all_restores_a_removed_schedule_from_definitions(
    start_app: Any, owner_token: str, signer: TokenSigner
) -> None:
    definitions: GrpcApp = await start_app("definitions")
    scheduler: GrpcApp = await start_app("scheduler", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    sched = pb_grpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition("0 9 * * *")))
    ).automation
    schedule_id = f"{created.id}:schedule_0"

    async def listed() -> list[str]:
        ids = [s.id for s in (await sched.ListSchedules(pb.ListSchedulesRequest())).schedules]
        assert ids == [schedule_id]
        return ids

    await assert_eventually(listed, timeout=10)
    await sched.RemoveSchedule(pb.RemoveScheduleRequest(schedule_id=schedule_id))
    assert not (await sched.ListSchedules(pb.ListSchedulesRequest())).schedules
    admin = pb_grpc.SchedulerServiceStub(channel(scheduler.address, signer.admin_token("ops")))
    result = await admin.SyncAll(pb.SyncAllRequest())
    assert result.removed == 0
    await listed()
    nxt = (await sched.ListSchedules(pb.ListSchedulesRequest())).schedules[0].next_fire_time
    assert nxt.ToDatetime(tzinfo=UTC) - datetime.now(UTC) <= timedelta(days=1)


async def test_describe_shows_each_fire_nominal_actual_and_run_status(
    start_app: Any, owner_token: str
) -> None:
    definitions: GrpcApp = await start_app("definitions")
    scheduler: GrpcApp = await start_app("scheduler", definitions_addr=definitions.address)
    await start_app("executor", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    sched = pb_grpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
    created = (
        await defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition("*/2 * * * * *"))
        )
    ).automation

    async def succeeded() -> Any:
        try:
            described = await sched.DescribeSchedule(
                pb.DescribeScheduleRequest(schedule_id=f"{created.id}:schedule_0", recent_count=5)
            )
        except grpc.aio.AioRpcError as exc:
            raise AssertionError("schedule not there yet") from exc
        done = [f for f in described.recent_fires if f.run_status == "succeeded"]
        assert done and done[0].run_id
        return done[0]

    fire = await assert_eventually(succeeded, timeout=10)
    nominal = fire.scheduled_for.ToDatetime(tzinfo=UTC)
    assert nominal.second % 2 == 0
    assert fire.fired_time.ToDatetime(tzinfo=UTC) >= nominal
    # Handed over to the executors ahead of its time (AUTOM_SCHEDULER_HANDOVER_S), not earlier.
    handover = timedelta(seconds=SchedulerSettings.model_fields["scheduler_handover_s"].default)
    assert fire.published_time.ToDatetime(tzinfo=UTC) >= nominal - handover
