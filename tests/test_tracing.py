"""One trace per scheduled fire: the due loop's span, the relay's publish span, and over NATS
(`traceparent` in the message headers) the executor's run, its steps and their HTTP and LLM
calls. Spans go to the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import tracing
from autom.core.grpcserver import channel
from autom.devstack.eventually import assert_eventually
from autom.drafter.testing import ScriptedLLM

from .conftest import StartApp

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


@pytest.fixture
async def sink() -> AsyncIterator[int]:
    """A local HTTP endpoint the automation posts to."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


def _definition(port: int) -> definition_pb2.AutomationDefinition:
    raw: dict[str, Any] = {
        "name": "traced",
        "triggers": [
            {
                "type": "schedule",
                "config": {"cron": "* * * * * *", "timezone": "UTC", "catchup": "none"},
            }
        ],
        "plan": [
            {"id": "mark", "action": "transform", "params": {"output": {"n": 1}}},
            {
                "id": "call",
                "action": "http_request",
                "params": {"method": "POST", "url": f"http://127.0.0.1:{port}/hook", "json": {}},
            },
            {"id": "ask", "action": "agent_task", "params": {"prompt": "hi", "model": MODEL}},
        ],
        "execution": {"concurrency": "skip"},
    }
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


async def test_one_trace_follows_a_fire_from_the_due_loop_to_every_step_call(
    spans: InMemorySpanExporter, start_app: StartApp, owner_token: str, sink: int
) -> None:
    async with ScriptedLLM() as llm:
        for _ in range(5):
            llm.reply("hello")
        definitions = await start_app("definitions")
        await start_app("scheduler", definitions_addr=definitions.address)
        executor = await start_app(
            "executor",
            definitions_addr=definitions.address,
            llm_api_base=llm.url,
            llm_api_key="test",
            http_allow_cidrs="127.0.0.1/32",
        )
        defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
        runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
        created = (
            await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=_definition(sink)))
        ).automation

        async def succeeded() -> executor_pb2.Run:
            listed = await runs.ListRuns(epb.ListRunsRequest(automation_id=created.id))
            done = [r for r in listed.runs if r.status == executor_pb2.RUN_STATUS_SUCCEEDED]
            assert done, [(r.status, r.error.message) for r in listed.runs]
            first: executor_pb2.Run = done[-1]
            return first

        run = await assert_eventually(succeeded, timeout=90)
        await defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=created.id))

    fire_trace = trace.get_current_span(tracing.fire_parent(run.fire_id)).get_span_context()
    mine = [s for s in spans.get_finished_spans() if s.context.trace_id == fire_trace.trace_id]
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in mine:
        by_name.setdefault(span.name, []).append(span)

    (due,) = by_name["scheduler.fire"]
    assert due.attributes is not None and due.attributes["autom.fire_id"] == run.fire_id
    (publish,) = [
        s for name, group in by_name.items() if name.startswith("publish ") for s in group
    ]
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == run.fire_id
    # Both hang from the fire's root; the run continues the publish span over NATS.
    for span in (due, publish):
        assert span.parent is not None and span.parent.span_id == fire_trace.span_id
    # Every delivery of the fire message (a redelivery too) is a run span under the publish.
    deliveries = by_name["executor.run"]
    assert all(s.parent is not None for s in deliveries)
    assert {s.parent.span_id for s in deliveries if s.parent} == {publish.context.span_id}
    steps = {s.name: s for s in mine if s.name.startswith("step ")}
    assert set(steps) == {"step mark", "step call", "step ask"}
    (ran,) = {step.parent.span_id for step in steps.values() if step.parent}
    assert ran in {s.context.span_id for s in deliveries}
    for step in steps.values():
        assert step.attributes is not None and step.attributes["autom.step.status"] == "succeeded"
    (http,) = by_name["HTTP POST"]
    assert http.parent is not None and http.parent.span_id == steps["step call"].context.span_id
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 200
    (ask,) = by_name[f"llm {MODEL}"]
    assert ask.parent is not None and ask.parent.span_id == steps["step ask"].context.span_id
    assert ask.attributes is not None
    assert ask.attributes["gen_ai.usage.input_tokens"] == 100  # what the scripted server says


def test_tracing_is_off_unless_otel_variables_ask_for_otlp() -> None:
    assert not tracing.configure_tracing("executor", environ={})
    assert not tracing.configure_tracing(
        "executor",
        environ={"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"},
    )
    assert not tracing.configure_tracing("executor", environ={"OTEL_TRACES_EXPORTER": "zipkin"})
    # Off, Autom's spans are the API's no-op ones: nothing is recorded or exported.
    assert not tracing.tracer().start_span("x").is_recording()
