"""Workspace quotas over the real definitions and executor, PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import nats
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.js import JetStreamContext

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.grpcserver import channel
from autom.devstack.eventually import assert_eventually
from autom.drafter.testing import ScriptedLLM

RUN = executor_pb2


@dataclass
class Stack:
    defs: Any
    admin: Any
    runs: Any
    js: JetStreamContext
    definitions_addr: str

    async def create(self, raw: dict[str, Any], *, paused: bool = False) -> str:
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        created = await self.defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition, paused=paused)
        )
        return str(created.automation.id)

    async def limit(self, **limits: float) -> None:
        await self.admin.SetWorkspaceQuotas(
            dpb.SetWorkspaceQuotasRequest(workspace_id="default", limits=limits)
        )


@pytest.fixture
async def stack(
    start_app: Any, owner_token: str, signer: TokenSigner, nats_url: str
) -> AsyncIterator[Stack]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # Fires go through the fires stream; the test stands in for its owner (the scheduler).
    await bus.ensure_streams(js, (bus.FIRES_STREAM,))
    definitions = await start_app("definitions")
    executor = await start_app(
        "executor", definitions_addr=definitions.address, quota_cache_seconds=0
    )
    yield Stack(
        dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token)),
        dgrpc.DefinitionsServiceStub(channel(definitions.address, signer.admin_token("ops"))),
        egrpc.ExecutorServiceStub(channel(executor.address, owner_token)),
        js,
        definitions.address,
    )
    await nc.close()


def quota_of(err: grpc.aio.AioRpcError) -> dict[str, str]:
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.reason == "quota_exceeded"
            return dict(info.metadata)
    raise AssertionError("no ErrorInfo")


def plan(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "plan": [{"id": "hold", "action": "wait", "params": {"duration": "30s"}}],
        **extra,
    }


async def test_active_automations_and_schedule_interval(stack: Stack) -> None:
    await stack.limit(active_automations=1, min_schedule_interval_seconds=300)
    first = await stack.create(plan("first"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.create(plan("second"))
    assert quota_of(caught.value) == {
        "limit_name": "active_automations",
        "current": "1",
        "limit": "1",
    }
    second = await stack.create(plan("second"), paused=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.defs.ResumeAutomation(dpb.ResumeAutomationRequest(automation_id=second))
    assert quota_of(caught.value)["limit_name"] == "active_automations"
    # Below the limit again: the second may run.
    await stack.defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=first))
    await stack.defs.ResumeAutomation(dpb.ResumeAutomationRequest(automation_id=second))

    every = {"type": "schedule", "config": {"cron": "* * * * *", "timezone": "UTC"}}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.create(plan("often", triggers=[every]), paused=True)
    assert quota_of(caught.value) == {
        "limit_name": "min_schedule_interval_seconds",
        "current": "60",
        "limit": "300",
    }
    hourly = {"type": "schedule", "config": {"cron": "0 * * * *", "timezone": "UTC"}}
    await stack.create(plan("hourly", triggers=[hourly]), paused=True)


async def test_creates_at_once_never_pass_the_active_limit(stack: Stack) -> None:
    await stack.limit(active_automations=3)
    outcomes = await asyncio.gather(
        *(stack.create(plan(f"rush-{i}")) for i in range(8)), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(made) == 3 and len(refused) == 5, outcomes
    assert all(quota_of(err)["limit_name"] == "active_automations" for err in refused)
    listed = await stack.defs.ListAutomations(dpb.ListAutomationsRequest(page_size=50))
    assert sorted(a.id for a in listed.automations) == sorted(made)
    quotas = await stack.admin.GetWorkspaceQuotas(
        dpb.GetWorkspaceQuotasRequest(workspace_id="default")
    )
    assert quotas.active_automations == 3


async def test_a_limit_lowered_below_the_active_count_refuses_with_the_exact_count(
    stack: Stack,
) -> None:
    # Paused and deleted automations do not count; the count a create makes stops at the
    # limit, the refusal still says how many are active.
    for i in range(4):
        await stack.create(plan(f"live-{i}"))
    await stack.create(plan("asleep"), paused=True)
    gone = await stack.create(plan("gone"))
    await stack.defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=gone))
    await stack.limit(active_automations=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.create(plan("one-more"))
    assert quota_of(caught.value) == {
        "limit_name": "active_automations",
        "current": "4",
        "limit": "2",
    }
    await stack.limit(active_automations=5)
    await stack.create(plan("fifth"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.create(plan("sixth"))
    assert quota_of(caught.value)["current"] == "5"


async def test_run_quotas_refuse_at_the_limit_and_recover(stack: Stack) -> None:
    slow = await stack.create(plan("slow"))
    listener = await stack.create(
        {
            "name": "listener",
            "triggers": [{"type": "event", "config": {"subject": "ping"}}],
            "plan": [{"id": "log", "action": "log", "params": {"message": "pong"}}],
        }
    )
    await stack.limit(concurrent_runs=1)
    held = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=slow))).run
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.runs.StartRun(epb.StartRunRequest(automation_id=slow))
    assert quota_of(caught.value) == {"limit_name": "concurrent_runs", "current": "1", "limit": "1"}

    # A fire refused by a quota is recorded as a skipped run naming the quota.
    await stack.js.publish("automations.custom.default.ping", json.dumps({}).encode())

    async def skipped() -> executor_pb2.Run:
        runs: list[executor_pb2.Run] = list(
            (await stack.runs.ListRuns(epb.ListRunsRequest(automation_id=listener))).runs
        )
        assert len(runs) == 1 and runs[0].status == RUN.RUN_STATUS_SKIPPED, runs
        return runs[0]

    refused = await assert_eventually(skipped, timeout=10)
    assert refused.error.type == "QuotaExceeded"
    assert "concurrent_runs" in refused.error.message

    usage = await stack.runs.GetWorkspaceUsage(epb.GetWorkspaceUsageRequest())
    by_name = {q.name: (q.current, q.limit) for q in usage.quotas}
    assert by_name["concurrent_runs"] == (1, 1)
    assert by_name["active_automations"] == (2, 1000)

    # Below the limit again once the held run ends.
    await stack.runs.CancelRun(epb.CancelRunRequest(run_id=held.id))

    async def admitted() -> None:
        await stack.runs.StartRun(epb.StartRunRequest(automation_id=listener))

    async def recovers() -> None:
        try:
            await admitted()
        except grpc.aio.AioRpcError as err:
            raise AssertionError(err.details()) from err

    await assert_eventually(recovers, timeout=10)

    # Runs per minute: two runs started this minute (held, the one just admitted).
    await stack.limit(concurrent_runs=0, runs_per_minute=2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admitted()
    assert quota_of(caught.value) == {"limit_name": "runs_per_minute", "current": "2", "limit": "2"}
    await stack.limit(runs_per_minute=10)
    # A limits read already in flight (the last run's own check) may still answer the old
    # limit: runs asking meanwhile share it, so the new one holds from the next read.
    await assert_eventually(recovers, timeout=10)


async def test_a_scheduled_fire_over_a_quota_is_a_skipped_run(stack: Stack, start_app: Any) -> None:
    await stack.limit(concurrent_runs=1)
    slow = await stack.create(plan("hold-the-slot"))
    held = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=slow))).run
    # The scheduler owns the fires; its per-second schedule meets the full slot.
    await start_app("scheduler", definitions_addr=stack.definitions_addr)
    every_second = {
        "type": "schedule",
        "config": {"cron": "* * * * * *", "timezone": "UTC", "catchup": "none"},
    }
    ticker = await stack.create(
        {
            "name": "ticker",
            "triggers": [every_second],
            "plan": [{"id": "log", "action": "log", "params": {"message": "tick"}}],
        }
    )

    async def refused() -> executor_pb2.Run:
        runs = (await stack.runs.ListRuns(epb.ListRunsRequest(automation_id=ticker))).runs
        skipped: list[executor_pb2.Run] = [r for r in runs if r.status == RUN.RUN_STATUS_SKIPPED]
        assert skipped, [r.status for r in runs]
        return skipped[0]

    run = await assert_eventually(refused, timeout=15)
    assert run.trigger_type == "schedule"
    assert run.error.type == "QuotaExceeded"
    assert "concurrent_runs" in run.error.message and "limit 1" in run.error.message
    # Free the slot now rather than making the executor's shutdown wait for the hold.
    await stack.runs.CancelRun(epb.CancelRunRequest(run_id=held.id))


async def test_llm_spend_per_day_refuses_then_recovers(
    start_app: Any, owner_token: str, signer: TokenSigner, nats_url: str
) -> None:
    async with ScriptedLLM() as llm:
        nc = await nats.connect(nats_url)
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
        definitions = await start_app("definitions")
        executor = await start_app(
            "executor",
            definitions_addr=definitions.address,
            quota_cache_seconds=0,
            llm_api_base=llm.url,
            llm_api_key="test-key",
        )
        stack = Stack(
            dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token)),
            dgrpc.DefinitionsServiceStub(channel(definitions.address, signer.admin_token("o"))),
            egrpc.ExecutorServiceStub(channel(executor.address, owner_token)),
            nc.jetstream(),
            definitions.address,
        )
        ask = await stack.create(
            {
                "name": "ask",
                "plan": [
                    {"id": "ask", "action": "agent_task",
                     "params": {"prompt": "hi", "model": "openai/gpt-4o-mini"}},
                ],
            }
        )  # fmt: skip
        await stack.limit(llm_spend_usd_per_day=0.000001)
        llm.reply("hello")
        first = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=ask))).run

        async def spent() -> None:
            run = (await stack.runs.GetRun(epb.GetRunRequest(run_id=first.id))).run
            assert run.status == RUN.RUN_STATUS_SUCCEEDED and run.cost_usd > 0, run

        # The first agent step imports litellm in the executor: seconds on a slow machine.
        await assert_eventually(spent, timeout=60)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.runs.StartRun(epb.StartRunRequest(automation_id=ask))
        assert quota_of(caught.value)["limit_name"] == "llm_spend_usd_per_day"
        await stack.limit(llm_spend_usd_per_day=100)
        llm.reply("again")
        await stack.runs.StartRun(epb.StartRunRequest(automation_id=ask))
        await nc.close()
