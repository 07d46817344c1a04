"""What an operator scrapes and reads: /metrics of every service after real work, one trace
per scheduled fire (spans in the SDK's in-memory exporter), and one request id from the
gateway through a service's log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import tracing
from autom.core.grpcserver import GrpcApp, channel
from autom.core.logging import configure_logging
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.devstack.ports import free_port
from autom.drafter.testing import ScriptedLLM
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings

MODEL = "openai/gpt-4o-mini"  # priced in litellm's bundled map: cost is above zero


def _ticker(sink_port: int) -> dict[str, Any]:
    return {
        "name": "ticker",
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
                "params": {"method": "POST", "url": f"http://127.0.0.1:{sink_port}/", "json": {}},
            },
            {"id": "ask", "action": "agent_task", "params": {"prompt": "hi", "model": MODEL}},
            {"id": "hold", "action": "wait", "params": {"duration": "1500ms"}},
        ],
        # Every other fire meets a run still holding: skipped by the concurrency policy.
        "execution": {"concurrency": "skip"},
    }


def _manual(closed_port: int) -> dict[str, Any]:
    return {
        "name": "asks-and-retries",
        "plan": [
            {"id": "ask", "action": "agent_task", "params": {"prompt": "hi", "model": MODEL}},
            {
                "id": "refused",
                "action": "http_request",
                "params": {"method": "GET", "url": f"http://127.0.0.1:{closed_port}/"},
                "retry": {"max_retries": 1, "initial_delay": "10ms", "jitter": False},
            },
        ],
    }


DRAFTED = {
    "definition": {
        "name": "drafted",
        "triggers": [{"type": "schedule", "config": {"cron": "0 9 * * 1", "timezone": "UTC"}}],
        "plan": [{"id": "hello", "action": "log", "params": {"message": "hi"}}],
    },
    "message": "ok",
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Autom's spans, kept in memory (the services' tracing is otherwise off)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
    provider.shutdown()


@pytest.fixture
async def sink() -> AsyncIterator[int]:
    """A local HTTP endpoint the scheduled automation posts to; yields its port."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


@dataclass
class Stack:
    definitions: GrpcApp
    scheduler: GrpcApp
    executor: GrpcApp
    drafter: GrpcApp
    gateway: Gateway
    http: httpx.AsyncClient
    executor_llm: ScriptedLLM
    drafter_llm: ScriptedLLM


@pytest.fixture
async def stack(
    spans: InMemorySpanExporter, start_app: Any, owner_token: str
) -> AsyncIterator[Stack]:
    async with ScriptedLLM() as executor_llm, ScriptedLLM() as drafter_llm:
        definitions = await start_app(
            "definitions", metrics_port=0, http_allow_cidrs="127.0.0.1/32"
        )
        addr = definitions.address
        scheduler = await start_app("scheduler", definitions_addr=addr, metrics_port=0)
        executor = await start_app(
            "executor",
            definitions_addr=addr,
            metrics_port=0,
            llm_api_base=executor_llm.url,
            llm_api_key="test",
            http_allow_cidrs="127.0.0.1/32",
        )
        drafter = await start_app(
            "drafter",
            definitions_addr=addr,
            scheduler_addr="127.0.0.1:1",
            metrics_port=0,
            model=MODEL,
            api_base=drafter_llm.url,
            api_key="test",
            num_retries=0,
            timeout_seconds=30.0,
        )
        gateway = Gateway(
            GatewaySettings(
                definitions_addr=addr,
                scheduler_addr=scheduler.address,
                executor_addr=executor.address,
                drafter_addr=drafter.address,
                shutdown_grace_seconds=1.0,
                metrics_port=0,
            )
        )
        headers = {"Authorization": f"Bearer {owner_token}"}
        async with (
            serve_asgi(gateway) as url,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http,
        ):
            yield Stack(
                definitions, scheduler, executor, drafter, gateway, http, executor_llm, drafter_llm
            )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """GET /metrics over HTTP and index every sample by name and labels."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    """Label sets of every sample of `name`."""
    return [dict(labels) for n, labels in samples if n == name]


def _port(app: GrpcApp) -> int:
    assert app.metrics_server is not None, f"{app.name} serves no /metrics"
    return app.metrics_server.port


async def test_every_service_serves_metrics_and_one_trace_follows_each_fire(
    stack: Stack, owner_token: str, spans: InMemorySpanExporter, sink: int
) -> None:
    ports = {app.name: _port(app) for app in (stack.definitions, stack.scheduler, stack.executor)}
    ports["drafter"] = _port(stack.drafter)
    assert stack.gateway.metrics is not None
    ports["gateway"] = stack.gateway.metrics.port
    assert len(set(ports.values())) == 5
    before = await scrape(ports["executor"])

    defs = dgrpc.DefinitionsServiceStub(channel(stack.definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(stack.executor.address, owner_token))

    async def create(raw: dict[str, Any]) -> Any:
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        request = dpb.CreateAutomationRequest(definition=definition)
        return (await defs.CreateAutomation(request)).automation

    ticker = await create(_ticker(sink))
    manual = await create(_manual(free_port()))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await defs.GetAutomation(dpb.GetAutomationRequest(automation_id="no-such-automation"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    for _ in range(40):  # the manual run's and the ticker's agent_task steps
        stack.executor_llm.reply("hello")
    started = await runs.StartRun(epb.StartRunRequest(automation_id=manual.id, request_id="m-1"))

    async def manual_failed() -> None:
        run = (await runs.GetRun(epb.GetRunRequest(run_id=started.run.id))).run
        assert run.status == executor_pb2.RUN_STATUS_FAILED, run.status

    await assert_eventually(manual_failed, timeout=60)
    stack.drafter_llm.reply(DRAFTED)
    drafted = await stack.http.post("/v1/drafts", json={"intent": "every monday say hi"})
    assert drafted.status_code == 200, drafted.text

    async def ticked_and_skipped() -> Samples:
        now = await scrape(ports["executor"])
        assert value(now, "autom_runs_total", status="succeeded") > value(
            before, "autom_runs_total", status="succeeded"
        )
        assert value(now, "autom_fires_total", outcome="skipped") > value(
            before, "autom_fires_total", outcome="skipped"
        )
        return now

    executor = await assert_eventually(ticked_and_skipped, timeout=90)
    await defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=ticker.id))

    def grew(name: str, **labels: str) -> float:
        delta = value(executor, name, **labels) - value(before, name, **labels)
        assert delta > 0, (name, labels, delta)
        return delta

    # Executor: runs by terminal status and their durations, steps by action, retries.
    grew("autom_runs_total", status="failed")
    grew("autom_runs_total", status="skipped")
    grew("autom_run_duration_seconds_count", status="succeeded")
    grew("autom_step_duration_seconds_count", action="transform", status="succeeded")
    grew("autom_step_duration_seconds_count", action="http_request", status="failed")
    assert grew("autom_step_attempts_total", action="http_request") >= 2
    assert grew("autom_step_retries_total", action="http_request") >= 1
    # Scheduled fires: from their instant to their first step, on a loaded test machine.
    count = grew("autom_fire_start_lag_seconds_count")
    lag = grew("autom_fire_start_lag_seconds_sum") / count
    assert 0 <= lag < 30, lag
    # agent_task's LLM call with the usage the scripted server reported.
    grew("autom_llm_calls_total", caller="agent_task", model=MODEL, outcome="ok")
    grew("autom_llm_tokens_total", caller="agent_task", model=MODEL, kind="prompt")
    grew("autom_llm_cost_usd_total", caller="agent_task", model=MODEL)
    runs_consumer = {"stream": "AUTOM_FIRES", "consumer": "executor"}
    assert runs_consumer in series(executor, "autom_consumer_pending_messages"), series(
        executor, "autom_consumer_pending_messages"
    )
    assert value(executor, "autom_consumer_pending_messages", **runs_consumer) >= 0

    scheduler = await scrape(ports["scheduler"])
    assert value(scheduler, "autom_fires_total", outcome="published") >= 2
    published = value(scheduler, "autom_fire_publish_lag_seconds_count")
    assert published >= 2
    assert 0 <= value(scheduler, "autom_fire_publish_lag_seconds_sum") / published < 30
    assert {"outbox": "scheduler"} in series(scheduler, "autom_outbox_backlog")
    assert value(scheduler, "autom_outbox_oldest_age_seconds", outbox="scheduler") >= 0

    definitions = await scrape(ports["definitions"])
    rpc = {"grpc_service": "autom.api.definitions.v1.DefinitionsService"}
    assert value(definitions, "grpc_server_handled_total", **rpc, grpc_method="CreateAutomation",
                 grpc_code="OK") >= 2  # fmt: skip
    assert value(definitions, "grpc_server_handled_total", **rpc, grpc_method="GetAutomation",
                 grpc_code="NOT_FOUND") >= 1  # fmt: skip
    assert value(definitions, "grpc_server_handling_seconds_count", **rpc,
                 grpc_method="CreateAutomation", grpc_code="OK") >= 2  # fmt: skip

    drafter = await scrape(ports["drafter"])
    assert value(drafter, "autom_llm_calls_total", caller="drafter", model=MODEL, outcome="ok") >= 1
    assert value(drafter, "autom_llm_tokens_total", caller="drafter", model=MODEL,
                 kind="completion") > 0  # fmt: skip

    for name, port in ports.items():
        samples = await scrape(port)
        assert value(samples, "process_resident_memory_bytes") > 0, name
        assert value(samples, "process_cpu_seconds_total") > 0, name

    listed = await runs.ListRuns(
        epb.ListRunsRequest(automation_id=ticker.id, status=executor_pb2.RUN_STATUS_SUCCEEDED)
    )
    assert_one_trace(spans.get_finished_spans(), listed.runs[-1].fire_id)


def assert_one_trace(finished: Sequence[ReadableSpan], fire_id: str) -> None:
    """Due loop → publish → (NATS) run → steps → HTTP and LLM calls, all in the fire's trace."""
    root = trace.get_current_span(tracing.fire_parent(fire_id)).get_span_context()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in finished:
        if span.context.trace_id == root.trace_id:
            by_name.setdefault(span.name, []).append(span)

    def parent(span: ReadableSpan) -> int:
        assert span.parent is not None, span.name
        return span.parent.span_id

    (due,) = by_name["scheduler.fire"]
    assert due.attributes is not None and due.attributes["autom.fire_id"] == fire_id
    (publish,) = [s for n, group in by_name.items() if n.startswith("publish ") for s in group]
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == fire_id
    # Both hang from the fire's root; the run continues the publish span over NATS.
    assert parent(due) == parent(publish) == root.span_id
    # Every delivery of the fire message (a redelivery too) is a run span under the publish.
    deliveries = by_name["executor.run"]
    assert {parent(s) for s in deliveries} == {publish.context.span_id}
    steps = {n: group[0] for n, group in by_name.items() if n.startswith("step ")}
    assert set(steps) == {"step mark", "step call", "step ask", "step hold"}
    (ran,) = {parent(step) for step in steps.values()}
    assert ran in {s.context.span_id for s in deliveries}
    for step in steps.values():
        assert step.attributes is not None and step.attributes["autom.step.status"] == "succeeded"
    (http,) = by_name["HTTP POST"]
    assert parent(http) == steps["step call"].context.span_id
    assert http.attributes is not None and http.attributes["http.response.status_code"] == 200
    (ask,) = by_name[f"llm {MODEL}"]
    assert parent(ask) == steps["step ask"].context.span_id
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


async def test_request_id_goes_from_the_gateway_to_every_log_line_and_back(
    stack: Stack,
) -> None:
    lines = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("INFO", "json")  # what AUTOM_LOG_FORMAT=json installs
    root.handlers[0].setStream(lines)  # type: ignore[attr-defined]
    try:
        stack.drafter_llm.reply(DRAFTED)
        sent = await stack.http.post(
            "/v1/drafts",
            json={"intent": "every monday say hi"},
            headers={"X-Request-Id": "req-ops-42"},
        )
        assert sent.status_code == 200, sent.text
        assert sent.headers["x-request-id"] == "req-ops-42"
        fresh = await stack.http.get("/v1/automations")
        forged = await stack.http.get("/v1/automations", headers={"X-Request-Id": "a b\tc"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert len(fresh.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] not in ("a b\tc", fresh.headers["x-request-id"])
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    answered = [r for r in records if r["msg"].startswith("drafting model answered")]
    assert answered, records
    assert all(r.get("request_id") == "req-ops-42" for r in answered), answered
