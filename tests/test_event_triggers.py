"""Event triggers and chaining over the real definitions and executor, PostgreSQL and NATS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from google.protobuf import json_format
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import bus
from autom.core.grpcserver import channel
from autom.core.protoconv import struct_to_dict, value_to_py
from autom.devstack.eventually import assert_eventually
from autom.executor.triggers import CUSTOM_DURABLE, RUNS_DURABLE

RUN = executor_pb2


@dataclass
class Stack:
    defs: Any
    runs: Any
    js: JetStreamContext
    nc: Any

    async def create(self, raw: dict[str, Any]) -> str:
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        created = await self.defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition)
        )
        return str(created.automation.id)

    async def runs_of(self, automation_id: str) -> list[executor_pb2.Run]:
        listed = await self.runs.ListRuns(epb.ListRunsRequest(automation_id=automation_id))
        return list(listed.runs)

    async def drained(self) -> None:
        """Every event so far has been handled by both event-trigger consumers."""

        async def check() -> None:
            for stream, durable in (
                (bus.CUSTOM_STREAM.name, CUSTOM_DURABLE),
                (bus.RUNS_STREAM.name, RUNS_DURABLE),
            ):
                try:
                    info = await self.js.consumer_info(stream, durable)
                except NotFoundError as exc:
                    raise AssertionError(f"{durable} not (yet) recreated") from exc
                assert info.num_pending == 0 and info.num_ack_pending == 0, (durable, info)

        await assert_eventually(check, timeout=10)


@pytest.fixture
async def stack(start_app: Any, owner_token: str, nats_url: str) -> AsyncIterator[Stack]:
    stack, _ = await _stack(start_app, owner_token, nats_url)
    yield stack
    await stack.nc.close()


async def _stack(start_app: Any, owner_token: str, nats_url: str) -> tuple[Stack, Any]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # Fires go through the fires stream; the test stands in for its owner (the scheduler).
    await bus.ensure_streams(js, (bus.FIRES_STREAM,))
    definitions = await start_app("definitions")
    executor = await start_app("executor", definitions_addr=definitions.address)
    stack = Stack(
        dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token)),
        egrpc.ExecutorServiceStub(channel(executor.address, owner_token)),
        js,
        nc,
    )
    return stack, definitions


def echo(name: str, trigger: dict[str, Any], output: str) -> dict[str, Any]:
    return {
        "name": name,
        "triggers": [trigger],
        "plan": [{"id": "echo", "action": "transform", "params": {"output": output}}],
    }


async def test_an_event_trigger_fires_on_matching_events_only(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    stack, definitions = await _stack(start_app, owner_token, nats_url)
    trigger = {
        "type": "event",
        "config": {"subject": "orders.*", "filter": "{{ event.data.total > 100 }}"},
    }
    listener = await stack.create(echo("big-orders", trigger, "{{ inputs.total }}"))
    for subject, data in [
        ("automations.custom.default.orders.created", {"total": 5}),  # filtered out
        ("automations.custom.default.invoices.created", {"total": 500}),  # other subject
        ("automations.custom.other-ws.orders.created", {"total": 500}),  # other workspace
        ("automations.custom.default.orders.created", {"total": 150}),  # the one
    ]:
        await stack.js.publish(subject, json.dumps(data).encode())

    async def one_succeeded() -> executor_pb2.Run:
        runs = await stack.runs_of(listener)
        assert len(runs) == 1, runs
        got = (await stack.runs.GetRun(epb.GetRunRequest(run_id=runs[0].id))).run
        assert got.status == RUN.RUN_STATUS_SUCCEEDED, got.status
        return got

    run = await assert_eventually(one_succeeded, timeout=10)
    await stack.drained()
    assert len(await stack.runs_of(listener)) == 1
    assert run.trigger_type == "event"
    assert value_to_py(run.steps[0].output) == 150
    cause = struct_to_dict(run.cause)
    assert cause["subject"] == "orders.created" and cause["stream"] == bus.CUSTOM_STREAM.name
    assert run.chain_depth == 1 and run.upstream_run_id == ""

    # Every event delivered again (the consumer is recreated from the stream's start, as
    # after a crash before the acks): still one run.
    await stack.js.delete_consumer(bus.CUSTOM_STREAM.name, CUSTOM_DURABLE)
    await start_app("executor", definitions_addr=definitions.address)
    await stack.drained()
    assert [r.id for r in await stack.runs_of(listener)] == [run.id]
    await stack.nc.close()


async def test_a_failed_run_of_x_starts_y_with_the_upstream_run_recorded(stack: Stack) -> None:
    x = await stack.create(echo("x-breaks", {"type": "event", "config": {"subject": "never"}},
                                "{{ inputs.missing.field }}"))  # fmt: skip
    trigger = {"type": "event", "config": {"source": {"automation": "x-breaks"}}}
    y = await stack.create(echo("y-cleans-up", trigger, "after {{ inputs.run_id }}"))
    started = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=x))).run

    async def y_succeeded() -> executor_pb2.Run:
        runs = await stack.runs_of(y)
        assert len(runs) == 1, runs
        got = (await stack.runs.GetRun(epb.GetRunRequest(run_id=runs[0].id))).run
        assert got.status == RUN.RUN_STATUS_SUCCEEDED, got.status
        return got

    run = await assert_eventually(y_succeeded, timeout=15)
    upstream = (await stack.runs.GetRun(epb.GetRunRequest(run_id=started.id))).run
    assert upstream.status == RUN.RUN_STATUS_FAILED
    assert run.upstream_run_id == started.id
    assert struct_to_dict(run.cause)["upstream_automation_id"] == x
    assert value_to_py(run.steps[0].output) == f"after {started.id}"
    assert run.chain_depth == 1
    assert struct_to_dict(run.inputs)["status"] == "failed"
    # Y's own success matches no trigger: nothing else starts.
    await stack.drained()
    assert len(await stack.runs_of(y)) == 1 and len(await stack.runs_of(x)) == 1

    # An emitted event names the run that emitted it: the chain goes on from there.
    emitter = await stack.create(
        {
            "name": "hands-off",
            "plan": [
                {"id": "emit", "action": "emit_event",
                 "params": {"subject": "handoff", "data": {"n": 7}}},
            ],
        }
    )  # fmt: skip
    catcher = await stack.create(
        echo("catches", {"type": "event", "config": {"subject": "handoff"}}, "{{ inputs.n }}")
    )
    sent = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=emitter))).run

    async def caught() -> executor_pb2.Run:
        runs = await stack.runs_of(catcher)
        assert len(runs) == 1 and runs[0].status == RUN.RUN_STATUS_SUCCEEDED, runs
        return runs[0]

    handed = await assert_eventually(caught, timeout=15)
    assert handed.upstream_run_id == sent.id and handed.chain_depth == 1


async def test_a_cycle_stops_at_the_chain_depth_limit(stack: Stack) -> None:
    def on(other: str) -> dict[str, Any]:
        return {"type": "event", "config": {"source": {"automation": other,
                                                        "status": ["succeeded"]}}}  # fmt: skip

    a = await stack.create(echo("ping", on("pong"), "ping"))
    b = await stack.create(echo("pong", on("ping"), "pong"))
    await stack.runs.StartRun(epb.StartRunRequest(automation_id=a))

    async def refused() -> executor_pb2.Run:
        runs = await stack.runs_of(a) + await stack.runs_of(b)
        skipped = [r for r in runs if r.status == RUN.RUN_STATUS_SKIPPED]
        assert len(skipped) == 1, [(r.chain_depth, r.status) for r in runs]
        return skipped[0]

    skipped = await assert_eventually(refused, timeout=20)
    assert skipped.chain_depth == 6
    assert skipped.error.type == "ChainTooDeep"
    assert "chain depth 6 exceeds the limit of 5" in skipped.error.message
    await stack.drained()
    everything = await stack.runs_of(a) + await stack.runs_of(b)
    # The manual run, five chained ones (depths 1-5) and the refused sixth.
    assert len(everything) == 7
    assert sorted(r.chain_depth for r in everything) == [0, 1, 2, 3, 4, 5, 6]


async def test_a_trigger_saved_after_its_source_ran_fires_on_the_next_run(stack: Stack) -> None:
    """The executor keeps matches between runs; a definitions event makes it ask again."""
    x = await stack.create(echo("x-repeats", {"type": "event", "config": {"subject": "never"}},
                                "x"))  # fmt: skip
    first = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=x))).run

    async def x_done() -> None:
        runs = await stack.runs_of(x)
        assert [r.status for r in runs] == [RUN.RUN_STATUS_SUCCEEDED], runs

    await assert_eventually(x_done, timeout=10)
    # The first run's finished event was matched (against nothing) before y existed.
    await stack.drained()

    created: list[str] = []

    async def note(msg: Any) -> None:
        created.append(msg.subject)

    sub = await stack.nc.subscribe("automations.definitions.created", cb=note)
    trigger = {
        "type": "event",
        "config": {"source": {"automation": "x-repeats", "status": ["succeeded"]}},
    }
    y = await stack.create(echo("y-follows", trigger, "after {{ inputs.run_id }}"))

    async def announced() -> None:
        assert created, "the created event has not gone by yet"

    await assert_eventually(announced, timeout=10)
    await sub.unsubscribe()
    second = (await stack.runs.StartRun(epb.StartRunRequest(automation_id=x))).run

    async def y_ran() -> executor_pb2.Run:
        runs = await stack.runs_of(y)
        assert len(runs) == 1 and runs[0].status == RUN.RUN_STATUS_SUCCEEDED, runs
        return runs[0]

    run = await assert_eventually(y_ran, timeout=15)
    assert run.upstream_run_id == second.id != first.id
    await stack.drained()
    assert len(await stack.runs_of(y)) == 1
