"""Edge values over real gRPC, and configs the scheduler cannot read are never dropped silently."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.auth import Role
from autom.core.errors import ValidationFailed
from autom.core.grpcserver import channel
from autom.core.protoconv import dict_to_struct, struct_to_dict, to_timestamp
from autom.core.registry import MAX_FIRES
from autom.scheduler import db
from autom.scheduler.domain.config import parse_config
from autom.scheduler.domain.model import AutomationChange
from autom.scheduler.service import SchedulerService

Make = Callable[..., AutomationChange]


def violations(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend(v.field for v in bad.field_violations)
    return out


@pytest.fixture
async def stub(start_scheduler: Any, token_for: Callable[..., str]) -> pb_grpc.SchedulerServiceStub:
    app = await start_scheduler()
    return pb_grpc.SchedulerServiceStub(channel(app.address, token_for(Role.OWNER)))


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"cron": "0 9 * * *", "after": to_timestamp(datetime(9999, 12, 31, 23, tzinfo=UTC))},
         "after"),
        ({"cron": "@yearly", "after": to_timestamp(datetime(9999, 1, 1, tzinfo=UTC))}, "after"),
        ({"cron": "0 9 * * *", "after": Timestamp(seconds=2**40)}, "after"),
        ({"cron": "0 9 * * *", "after": Timestamp(seconds=0, nanos=-1)}, "after"),
        ({"cron": "0 9\0 * * *"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "UTC\0"}, "timezone"),
    ],
    ids=[
        "end-of-9999", "yearly-9999", "seconds-out-of-range", "negative-nanos", "nul-cron",
        "nul-zone",
    ],
)  # fmt: skip
async def test_preview_edge_values_are_invalid_argument_naming_the_field(
    stub: pb_grpc.SchedulerServiceStub, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PreviewSchedule(pb.PreviewScheduleRequest(**request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(info.value)


async def test_preview_close_to_the_end_of_time_still_answers(
    stub: pb_grpc.SchedulerServiceStub,
) -> None:
    after = to_timestamp(datetime(9999, 1, 1, tzinfo=UTC))
    answer = await stub.PreviewSchedule(pb.PreviewScheduleRequest(cron="0 9 * * *", after=after))
    assert len(answer.next_fire_times) == 5


def test_max_fires_as_the_api_carries_it_parses_up_to_the_shared_bound() -> None:
    # Numbers cross the API as doubles: what definitions accepts arrives like this.
    for accepted in (0, 5, MAX_FIRES):
        config = struct_to_dict(dict_to_struct({"cron": "0 9 * * *", "max_fires": accepted}))
        assert parse_config(config).max_fires == (accepted or None)
    assert parse_config({"cron": "0 9 * * *", "max_fires": 7.0}).max_fires == 7
    for refused in (MAX_FIRES + 1, 1e300, 2**53 + 1, -1, 2.5, True):
        with pytest.raises(ValidationFailed):
            parse_config({"cron": "0 9 * * *", "max_fires": refused})


async def test_a_config_the_scheduler_cannot_read_keeps_the_existing_schedule(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    t = datetime.now(UTC)
    await service.apply_change(make_change("0 9 * * *", at=t))
    await service.apply_change(
        make_change("0 9 * * *", max_fires=1e300, version=2, at=t + timedelta(1e-3))
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*db.schedules.c))).all()
    assert [(r.id, r.enabled, r.cron) for r in rows] == [("auto-1:tick", True, "0 9 * * *")]
    assert rows[0].next_fire_at is not None
    await service.apply_change(
        make_change(
            "0 9 * * *", max_fires=1e300, version=3, status="paused", at=t + timedelta(2e-3)
        )
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*db.schedules.c))).all()
    assert [(r.id, r.enabled) for r in rows] == [("auto-1:tick", False)]
