"""The whole path: create -> scheduler fires over JetStream -> executor runs -> read back."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import create_async_engine

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core.grpcserver import channel
from autom.core.protoconv import dict_to_struct, value_to_py
from autom.devstack.eventually import assert_eventually

EVERY_TWO_SECONDS = {
    "name": "zurich-ticker",
    "triggers": [
        {
            "type": "schedule",
            "config": {"cron": "*/2 * * * * *", "timezone": "Europe/Zurich", "catchup": "none"},
            "inputs": {"who": "zurich"},
        }
    ],
    "plan": [
        {
            "id": "greet",
            "action": "transform",
            "params": {"output": {"greeting": "hello {{ inputs.who }}", "n": "{{ 40 + 2 }}"}},
        }
    ],
}


def definition(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


async def test_scheduled_automation_runs_to_success_and_manual_run_too(
    start_app: Any, owner_token: str, database_url: str
) -> None:
    definitions = await start_app("definitions")
    await start_app("scheduler", definitions_addr=definitions.address)
    executor = await start_app("executor", definitions_addr=definitions.address)

    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
    created = (
        await defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition(EVERY_TWO_SECONDS))
        )
    ).automation

    async def one_scheduled_success() -> executor_pb2.Run:
        listed = await runs.ListRuns(
            epb.ListRunsRequest(automation_id=created.id, status=executor_pb2.RUN_STATUS_SUCCEEDED)
        )
        assert listed.runs, "no succeeded run yet"
        return listed.runs[0]

    first = await assert_eventually(one_scheduled_success, timeout=10)
    run = (await runs.GetRun(epb.GetRunRequest(run_id=first.id))).run
    assert run.trigger_type == "schedule"
    assert [s.step_id for s in run.steps] == ["greet"]
    assert run.steps[0].status == executor_pb2.STEP_STATUS_SUCCEEDED
    assert value_to_py(run.steps[0].output) == {"greeting": "hello zurich", "n": 42}
    assert run.scheduled_for.ToDatetime().second % 2 == 0

    manual = (
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id,
                request_id="manual-1",
                inputs=dict_to_struct({"who": "me"}),
            )
        )
    ).run

    async def manual_succeeded() -> executor_pb2.Run:
        got = (await runs.GetRun(epb.GetRunRequest(run_id=manual.id))).run
        assert got.status == executor_pb2.RUN_STATUS_SUCCEEDED, got.status
        return got

    done = await assert_eventually(manual_succeeded, timeout=10)
    assert done.trigger_type == "manual"
    assert value_to_py(done.steps[0].output)["greeting"] == "hello me"


async def test_restarting_the_executor_never_yields_two_runs_for_one_fire(
    start_app: Any, owner_token: str, database_url: str
) -> None:
    definitions = await start_app("definitions")
    await start_app("scheduler", definitions_addr=definitions.address)
    executor = await start_app("executor", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    raw = {**EVERY_TWO_SECONDS, "name": "restart-me"}
    raw["triggers"] = [
        {
            **raw["triggers"][0],
            "config": {"cron": "* * * * * *", "timezone": "UTC", "catchup": "all"},
        }
    ]
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation

    for _ in range(3):
        await asyncio.sleep(1.5)
        await executor.stop()
        await asyncio.sleep(0.5)
        executor = await start_app("executor", definitions_addr=definitions.address)

    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:

        async def all_terminal_and_unique() -> int:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(sa.text("SELECT fire_id, status FROM executor.runs"))
                ).all()
            fire_ids = [r.fire_id for r in rows]
            assert len(fire_ids) == len(set(fire_ids)), "two runs for one fire"
            assert len(rows) >= 4
            stuck = [r for r in rows if r.status in ("pending", "running")]
            assert not stuck, f"{len(stuck)} runs not terminal"
            return len(rows)

        # Stop new fires so that "every run terminal" has a fixed set of runs to reach.
        await defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=created.id))
        await assert_eventually(all_terminal_and_unique, timeout=20)
    finally:
        await engine.dispose()
