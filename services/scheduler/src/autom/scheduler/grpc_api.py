"""SchedulerService servicer: a thin adapter between protobuf and the use cases."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.audit import Change
from autom.core.auth import current_principal
from autom.core.errors import Unavailable
from autom.core.protoconv import from_timestamp, struct_to_dict
from autom.scheduler.convert import fire_to_proto, schedule_to_proto
from autom.scheduler.service import SchedulerService
from autom.scheduler.sync import Resync

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _ts(instant: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(instant)
    return ts


class SchedulerApi(pb_grpc.SchedulerServiceServicer):
    """Implements the RPCs of SchedulerService."""

    def __init__(self, service: SchedulerService, resync: Resync | None) -> None:
        self._svc = service
        self._resync = resync

    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Ctx
    ) -> pb.ListSchedulesResponse:
        page = await self._svc.list_schedules(
            current_principal(),
            automation_id=request.automation_id,
            enabled_only=request.enabled_only,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListSchedulesResponse(
            schedules=[schedule_to_proto(r) for r in page.rows],
            next_page_token=page.next_token,
        )

    async def DescribeSchedule(
        self, request: pb.DescribeScheduleRequest, context: Ctx
    ) -> pb.DescribeScheduleResponse:
        row, upcoming, recent = await self._svc.describe_schedule(
            current_principal(),
            request.schedule_id,
            next_count=request.next_count,
            recent_count=request.recent_count,
        )
        return pb.DescribeScheduleResponse(
            schedule=schedule_to_proto(row),
            next_fire_times=[_ts(t) for t in upcoming],
            recent_fires=[fire_to_proto(f) for f in recent],
        )

    async def PreviewSchedule(
        self, request: pb.PreviewScheduleRequest, context: Ctx
    ) -> pb.PreviewScheduleResponse:
        description, times = self._svc.preview(
            cron=request.cron,
            timezone=request.timezone,
            on_missing=request.on_missing,
            on_repeated=request.on_repeated,
            count=request.count,
            after=from_timestamp(request.after) if request.HasField("after") else None,
        )
        return pb.PreviewScheduleResponse(
            description=description, next_fire_times=[_ts(t) for t in times]
        )

    async def TriggerNow(
        self, request: pb.TriggerNowRequest, context: Ctx
    ) -> pb.TriggerNowResponse:
        fire = await self._svc.trigger_now(
            current_principal(),
            request.schedule_id,
            request_id=request.request_id,
            inputs=struct_to_dict(request.inputs),
        )
        return pb.TriggerNowResponse(fire=fire_to_proto(fire))

    async def Backfill(self, request: pb.BackfillRequest, context: Ctx) -> pb.BackfillResponse:
        created, already = await self._svc.backfill(
            current_principal(),
            request.schedule_id,
            start=from_timestamp(request.start_time) if request.HasField("start_time") else None,
            end=from_timestamp(request.end_time) if request.HasField("end_time") else None,
        )
        return pb.BackfillResponse(fires_created=created, already_fired=already)

    async def SyncAll(self, request: pb.SyncAllRequest, context: Ctx) -> pb.SyncAllResponse:
        current_principal()
        if self._resync is None:
            raise Unavailable("resync from definitions is disabled on this replica")
        result = await self._resync.run_once()
        caller = current_principal()
        await self._svc.record(
            caller,
            Change(
                action="schedule.sync_all",
                target_type="deployment",
                target_id="schedules",
                workspace_id=caller.workspace_id,
                details={"upserted": str(result.upserted), "removed": str(result.removed)},
            ),
        )
        return pb.SyncAllResponse(upserted=result.upserted, removed=result.removed)

    async def RemoveSchedule(
        self, request: pb.RemoveScheduleRequest, context: Ctx
    ) -> pb.RemoveScheduleResponse:
        await self._svc.remove(current_principal(), request.schedule_id)
        return pb.RemoveScheduleResponse()
