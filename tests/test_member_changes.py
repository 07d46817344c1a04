"""A member demoted or removed loses the rights of their tokens in every service, at once."""

from __future__ import annotations

import uuid

import grpc

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as epb_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as spb_grpc
from autom.core.grpcserver import channel
from autom.devstack.eventually import assert_eventually

from .conftest import StartApp


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_demotion_and_removal_reach_the_scheduler_and_the_executor(
    start_app: StartApp, owner_token: str
) -> None:
    definitions = await start_app("definitions")
    executor = await start_app("executor", definitions_addr=definitions.address)
    scheduler = await start_app(
        "scheduler", definitions_addr=definitions.address, scheduler_resync_on_start=False
    )
    owner = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    created = await owner.CreateApiToken(
        dpb.CreateApiTokenRequest(principal="user:ed", role=definitions_pb2.ROLE_EDITOR)
    )
    runs = epb_grpc.ExecutorServiceStub(channel(executor.address, created.secret))
    schedules = spb_grpc.SchedulerServiceStub(channel(scheduler.address, created.secret))

    def cancel() -> object:
        return runs.CancelRun(epb.CancelRunRequest(run_id=str(uuid.uuid4())))

    def trigger() -> object:
        return schedules.TriggerNow(spb.TriggerNowRequest(schedule_id="nope:tick"))

    # As an editor, both calls pass authorization and find nothing.
    assert await _code(cancel()) == grpc.StatusCode.NOT_FOUND
    assert await _code(trigger()) == grpc.StatusCode.NOT_FOUND

    await owner.SetMember(
        dpb.SetMemberRequest(principal="user:ed", role=definitions_pb2.ROLE_VIEWER)
    )

    async def demoted() -> None:
        assert await _code(cancel()) == grpc.StatusCode.PERMISSION_DENIED
        assert await _code(trigger()) == grpc.StatusCode.PERMISSION_DENIED

    await assert_eventually(demoted, timeout=10)
    assert await _code(runs.ListRuns(epb.ListRunsRequest())) == grpc.StatusCode.OK

    await owner.RemoveMember(dpb.RemoveMemberRequest(principal="user:ed"))

    async def removed() -> None:
        assert await _code(runs.ListRuns(epb.ListRunsRequest())) == grpc.StatusCode.UNAUTHENTICATED
        listed = schedules.ListSchedules(spb.ListSchedulesRequest())
        assert await _code(listed) == grpc.StatusCode.UNAUTHENTICATED

    await assert_eventually(removed, timeout=10)
