"""Resync at scale: many large definitions stream through in bounded chunks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp, channel
from autom.devstack.testing import service_keys
from autom.scheduler import db as scheduler_db
from autom.scheduler.domain.model import AutomationChange, TriggerSpec
from autom.scheduler.service import SchedulerService
from autom.scheduler.settings import SchedulerSettings

COUNT = 40


def large_definition(i: int) -> definition_pb2.AutomationDefinition:
    raw = {
        "name": f"large-{i:03d}",
        "triggers": [{"type": "schedule", "config": {"cron": f"{i % 60} 9 * * *"}}],
        # ~200 KiB of plan: 40 of them are ~8 MiB, twice gRPC's default receive limit.
        "plan": [
            {"id": f"s{j}", "action": "log", "params": {"message": "x" * 20_000}} for j in range(10)
        ],
    }
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


async def test_resync_of_many_large_definitions_completes_and_sweeps_the_gone(
    start_app: Any, owner_token: str, database_url: str, nats_url: str, signing_key: str
) -> None:
    definitions: GrpcApp = await start_app("definitions")
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    for i in range(COUNT):
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=large_definition(i)))
    settings = SchedulerSettings(
        database_url=database_url,
        nats_url=nats_url,
        **service_keys("scheduler", signing_key),
    )
    engine = create_engine(url=database_url, application_name="resync-test")
    try:
        # A schedule whose automation no longer exists upstream (its delete event was lost).
        await SchedulerService(engine, settings).apply_change(
            AutomationChange(
                automation_id="gone",
                workspace_id="default",
                version=1,
                revision=1,
                status="active",
                deleted=False,
                created_by="user:owner",
                triggers=(TriggerSpec("tick", "schedule", {"cron": "0 9 * * *"}),),
            )
        )
        scheduler: GrpcApp = await start_app(
            "scheduler", definitions_addr=definitions.address, scheduler_resync_on_start=False
        )
        admin = TokenSigner(signing_key).admin_token("ops")
        sched = pb_grpc.SchedulerServiceStub(channel(scheduler.address, admin))
        result = await sched.SyncAll(pb.SyncAllRequest(), timeout=60)
        assert (result.upserted, result.removed) == (COUNT, 1)
        async with engine.connect() as conn:
            s = scheduler_db.schedules
            ids = (await conn.execute(sa.select(s.c.automation_id))).scalars().all()
        assert len(set(ids)) == COUNT and "gone" not in ids
    finally:
        await engine.dispose()
