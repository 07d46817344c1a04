"""Cross-workspace administration belongs to the deployment admin, not to workspace owners."""

from __future__ import annotations

import asyncio
import os
import sys

import grpc

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as spb_grpc
from autom.core.grpcserver import channel
from autom.devstack.testing import service_env

from .conftest import StartApp


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _admin_token(signing_key: str) -> str:
    """What an operator runs: the definitions command, with the deployment's key."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.definitions",
        "admin-token",
        "--name",
        "ops",
        "--ttl",
        "600",
        env={
            **os.environ,
            **service_env("definitions", signing_key),
            "AUTOM_LOG_LEVEL": "WARNING",
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    return out.decode().strip().splitlines()[-1]


async def test_only_the_deployment_admin_may_resync_every_workspace(
    start_app: StartApp, owner_token: str, signing_key: str
) -> None:
    definitions = await start_app("definitions")
    scheduler = await start_app(
        "scheduler", definitions_addr=definitions.address, scheduler_resync_on_start=False
    )
    owner = spb_grpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
    assert await _code(owner.SyncAll(spb.SyncAllRequest())) == grpc.StatusCode.PERMISSION_DENIED

    token = await _admin_token(signing_key)
    admin = spb_grpc.SchedulerServiceStub(channel(scheduler.address, token))
    assert await _code(admin.SyncAll(spb.SyncAllRequest(), timeout=30)) == grpc.StatusCode.OK

    # The admin administers the deployment; it reads and changes no workspace's content.
    admin_defs = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, token))
    who = await admin_defs.WhoAmI(dpb.WhoAmIRequest())
    assert who.principal == "admin:ops"
    for call in (
        admin_defs.ListAutomations(dpb.ListAutomationsRequest()),
        admin_defs.ListMembers(dpb.ListMembersRequest()),
        admin.ListSchedules(spb.ListSchedulesRequest()),
    ):
        assert await _code(call) == grpc.StatusCode.PERMISSION_DENIED

    # No API hands out the admin role: an owner can only grant workspace roles.
    owner_defs = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    created = await owner_defs.CreateApiToken(
        dpb.CreateApiTokenRequest(principal="admin:ops", role=definitions_pb2.ROLE_OWNER)
    )
    minted = spb_grpc.SchedulerServiceStub(channel(scheduler.address, created.secret))
    assert await _code(minted.SyncAll(spb.SyncAllRequest())) == grpc.StatusCode.PERMISSION_DENIED
