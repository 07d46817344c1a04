"""The SchedulerService API over real gRPC: validation, isolation, trigger, backfill, admin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from autom.api.events.v1 import events_pb2
from autom.api.scheduler.v1 import scheduler_pb2
from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import channel
from autom.core.protoconv import dict_to_struct, struct_to_dict, to_timestamp
from autom.devstack.eventually import assert_eventually
from autom.scheduler.service import SchedulerService

Stub = pb_grpc.SchedulerServiceStub


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
async def stub(start_scheduler: Any, token_for: Callable[..., str]) -> Stub:
    app = await start_scheduler()
    return Stub(channel(app.address, token_for(Role.OWNER)))


@pytest.fixture
async def seeded(service: SchedulerService, make_change: Any) -> None:
    await service.apply_change(make_change("0 9 * * *", timezone="Europe/Zurich"))
    await service.apply_change(
        make_change("0 10 * * *", automation_id="other", workspace_id="acme")
    )


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"cron": "not a cron"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"cron": "0 0 31 2 *"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": "0 9 * * *", "on_missing": "maybe"}, "on_missing"),
        ({"cron": "0 9 * * *", "count": 101}, "count"),
        ({"cron": "0 9 * * *", "count": -1}, "count"),
    ],
)
async def test_preview_rejects_bad_input_with_the_field(
    stub: Stub, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PreviewSchedule(pb.PreviewScheduleRequest(**request_fields))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(info.value)


async def test_preview_reports_a_bad_cron_and_a_bad_zone_together(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.PreviewSchedule(
            pb.PreviewScheduleRequest(cron="61 * * * *", timezone="Europe/Atlantis")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"cron", "timezone"} <= set(violations(info.value))


async def test_preview_describes_and_lists_instants_in_the_zone(stub: Stub) -> None:
    after = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    response = await stub.PreviewSchedule(
        pb.PreviewScheduleRequest(
            cron="30 2 * * *", timezone="Europe/Zurich", count=3, after=to_timestamp(after)
        )
    )
    assert "Europe/Zurich" in response.description
    times = [t.ToDatetime(tzinfo=UTC) for t in response.next_fire_times]
    # 2026-03-29 02:30 does not exist in Zurich: shift fires at 03:00 local (01:00 UTC).
    assert times == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


@pytest.mark.usefixtures("seeded")
async def test_list_and_describe_are_scoped_to_the_callers_workspace(
    stub: Stub, start_scheduler: Any, token_for: Callable[..., str]
) -> None:
    listed = await stub.ListSchedules(pb.ListSchedulesRequest())
    assert [s.id for s in listed.schedules] == ["auto-1:tick"]
    schedule = listed.schedules[0]
    assert schedule.enabled and schedule.description.endswith("(Europe/Zurich)")
    assert struct_to_dict(schedule.inputs) == {"repo": "octo/widgets"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DescribeSchedule(pb.DescribeScheduleRequest(schedule_id="other:tick"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    described = await stub.DescribeSchedule(
        pb.DescribeScheduleRequest(schedule_id="auto-1:tick", next_count=3)
    )
    times = [t.ToDatetime(tzinfo=UTC) for t in described.next_fire_times]
    assert len(times) == 3 and times == sorted(times)
    assert times[0] == described.schedule.next_fire_time.ToDatetime(tzinfo=UTC)


@pytest.mark.usefixtures("seeded")
async def test_list_pages_in_next_fire_order(
    stub: Stub, service: SchedulerService, make_change: Any
) -> None:
    for i in range(4):
        await service.apply_change(make_change(f"{i} 8 * * *", automation_id=f"a{i}"))
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSchedules(pb.ListSchedulesRequest(page_size=2, page_token=token))
        seen.extend(s.id for s in page.schedules)
        token = page.next_page_token
        if not token:
            break
    # auto-1 fires at 09:00 Zurich = 08:00 UTC, tied with a0 and ordered by id.
    assert seen == ["a0:tick", "auto-1:tick", "a1:tick", "a2:tick", "a3:tick"]


@pytest.mark.usefixtures("seeded")
async def test_trigger_now_is_idempotent_and_merges_inputs(stub: Stub, nats_url: str) -> None:
    request = pb.TriggerNowRequest(
        request_id="r-1", schedule_id="auto-1:tick", inputs=dict_to_struct({"extra": 1})
    )
    first = (await stub.TriggerNow(request)).fire
    second = (await stub.TriggerNow(request)).fire
    assert first.fire_id == second.fire_id == "auto-1:tick:manual:r-1"
    assert first.kind == scheduler_pb2.FIRE_KIND_MANUAL

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def published() -> events_pb2.FireEvent:
            sub = await js.pull_subscribe("automations.fires.>", stream="AUTOM_FIRES")
            try:
                msgs = await sub.fetch(10, timeout=0.5)
            except TimeoutError:
                msgs = []
            finally:
                await sub.unsubscribe()
            assert len(msgs) == 1
            return events_pb2.FireEvent.FromString(msgs[0].data)

        event = await assert_eventually(published, timeout=5)
    finally:
        await nc.close()
    assert event.trigger_type == "manual" and event.principal == "user:alice"
    assert struct_to_dict(event.inputs) == {"repo": "octo/widgets", "extra": 1}


@pytest.mark.usefixtures("seeded")
async def test_backfill_fires_a_range_once(stub: Stub) -> None:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=3)
    request = pb.BackfillRequest(
        schedule_id="auto-1:tick", start_time=to_timestamp(start), end_time=to_timestamp(end)
    )
    first = await stub.Backfill(request)
    again = await stub.Backfill(request)
    assert (first.fires_created, first.already_fired) == (3, 0)
    assert (again.fires_created, again.already_fired) == (0, 3)
    described = await stub.DescribeSchedule(
        pb.DescribeScheduleRequest(schedule_id="auto-1:tick", recent_count=10)
    )
    assert {f.kind for f in described.recent_fires} == {scheduler_pb2.FIRE_KIND_BACKFILL}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (None, timedelta(days=-1), "start_time"),
        (timedelta(days=-1), timedelta(days=-2), "end_time"),
        (timedelta(days=-1), timedelta(days=1), "end_time"),
        (timedelta(days=-5000), timedelta(0), "end_time"),
    ],
)
async def test_backfill_rejects_bad_ranges(
    stub: Stub, start: timedelta | None, end: timedelta, field: str
) -> None:
    now = datetime.now(UTC)
    request = pb.BackfillRequest(schedule_id="auto-1:tick", end_time=to_timestamp(now + end))
    if start is not None:
        request.start_time.CopyFrom(to_timestamp(now + start))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Backfill(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(info.value)


@pytest.mark.usefixtures("seeded")
async def test_permissions_follow_roles(
    start_scheduler: Any, token_for: Callable[..., str]
) -> None:
    app = await start_scheduler()
    viewer = Stub(channel(app.address, token_for(Role.VIEWER)))
    editor = Stub(channel(app.address, token_for(Role.EDITOR)))
    await viewer.ListSchedules(pb.ListSchedulesRequest())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await viewer.TriggerNow(pb.TriggerNowRequest(schedule_id="auto-1:tick"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await editor.RemoveSchedule(pb.RemoveScheduleRequest(schedule_id="auto-1:tick"))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.usefixtures("seeded")
async def test_remove_schedule_deletes_it_and_other_workspaces_see_not_found(
    stub: Stub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RemoveSchedule(pb.RemoveScheduleRequest(schedule_id="other:tick"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.RemoveSchedule(pb.RemoveScheduleRequest(schedule_id="auto-1:tick"))
    assert not (await stub.ListSchedules(pb.ListSchedulesRequest())).schedules


async def test_sync_all_without_definitions_is_unavailable(
    start_scheduler: Any, signer: TokenSigner
) -> None:
    app = await start_scheduler()
    admin = Stub(channel(app.address, signer.admin_token("ops")))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await admin.SyncAll(pb.SyncAllRequest(), timeout=60)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
