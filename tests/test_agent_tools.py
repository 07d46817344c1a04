"""An agent step calling another automation or an MCP server's tool, over the real definitions,
executor, PostgreSQL, NATS and litellm (the model is a scripted OpenAI-compatible server on
loopback, the MCP server the SDK's own); MCP servers over the gateway's HTTP routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
from cryptography.fernet import Fernet
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import bus
from autom.core.grpcserver import channel
from autom.core.protoconv import struct_to_dict, value_to_py
from autom.devstack import mcpserver
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.devstack.ports import free_port
from autom.executor.testing import ScriptedModel, serving
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings

RUN = executor_pb2


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    async with serving(ScriptedModel()) as scripted:
        yield scripted


async def test_an_automation_called_as_a_tool_is_a_child_run_whose_output_comes_back(
    start_app: Any, owner_token: str, nats_url: str, model: ScriptedModel
) -> None:
    nc = await nats.connect(nats_url)
    await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    definitions = await start_app("definitions")
    executor = await start_app(
        "executor",
        definitions_addr=definitions.address,
        llm_api_base=f"http://127.0.0.1:{model.port}/v1",
        llm_api_key="k",
        default_model="openai/test-model",
        max_chain_depth=1,
    )
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))

    async def create(raw: dict[str, Any]) -> str:
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        made = await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition))
        return str(made.automation.id)

    await create(
        {
            "name": "file-issue",
            "inputs": {
                "schema": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {"title": {"type": "string"}},
                }
            },
            "plan": [
                {
                    "id": "file",
                    "action": "transform",
                    "params": {"output": {"filed": "{{ inputs.title }}", "number": 42}},
                }
            ],
        }
    )
    triage = await create(
        {
            "name": "triage",
            "plan": [
                {
                    "id": "ask",
                    "action": "agent_task",
                    "params": {
                        "prompt": "File the urgent one.",
                        "tools": ["automation:file-issue"],
                    },
                }
            ],
        }
    )
    model.answers = [
        {"tool_calls": [("automation__file-issue", {"inputs": {"title": "prod down"}})]},
        "Filed #42.",
    ]
    started = (await runs.StartRun(epb.StartRunRequest(automation_id=triage))).run

    async def finished() -> executor_pb2.Run:
        got = (await runs.GetRun(epb.GetRunRequest(run_id=started.id))).run
        assert got.status == RUN.RUN_STATUS_SUCCEEDED, (got.status, got.error)
        return got

    run = await assert_eventually(finished, timeout=60)
    step = run.steps[0]
    assert value_to_py(step.output)["text"] == "Filed #42."
    [call] = step.tool_calls
    assert (call.call_n, call.name, call.status) == (1, "automation:file-issue", "succeeded")
    result = value_to_py(call.result)
    assert result["output"] == {"filed": "prod down", "number": 42}
    # The model saw the child's output as the tool's result.
    shown = json.loads(model.requests[1]["messages"][-1]["content"])
    assert shown["result"]["output"]["number"] == 42

    # WatchRun carries the sub-steps too.
    async for event in runs.WatchRun(epb.WatchRunRequest(run_id=run.id)):
        assert [c.name for c in event.run.steps[0].tool_calls] == ["automation:file-issue"]
        break

    child = (await runs.GetRun(epb.GetRunRequest(run_id=result["run_id"]))).run
    assert child.status == RUN.RUN_STATUS_SUCCEEDED
    assert child.upstream_run_id == run.id and child.chain_depth == 1
    assert child.principal == run.principal
    assert struct_to_dict(child.cause)["type"] == "tool"

    # The child of a child would pass max_chain_depth (1): refused, and its model is told.
    nested = await create(
        {
            "name": "nested",
            "plan": [
                {
                    "id": "ask",
                    "action": "agent_task",
                    "params": {"prompt": "x", "tools": ["automation:triage"]},
                }
            ],
        }
    )
    model.requests.clear()
    model.answers = [
        {"tool_calls": [("automation__triage", {})]},
        {"tool_calls": [("automation__file-issue", {"inputs": {"title": "again"}})]},
        "could not file",
        "nested done",
    ]
    started = (await runs.StartRun(epb.StartRunRequest(automation_id=nested))).run
    run = await assert_eventually(finished, timeout=60)
    [call] = run.steps[0].tool_calls
    inner = value_to_py(call.result)
    assert inner["output"]["text"] == "could not file"
    child = (await runs.GetRun(epb.GetRunRequest(run_id=inner["run_id"]))).run
    [refused] = child.steps[0].tool_calls
    assert refused.status == "failed" and refused.error.type == "ChainTooDeep"
    assert "ChainTooDeep" in model.requests[2]["messages"][-1]["content"]
    await nc.close()


async def test_an_mcp_server_registered_in_definitions_serves_an_agent_step(
    start_app: Any, owner_token: str, nats_url: str, model: ScriptedModel
) -> None:
    nc = await nats.connect(nats_url)
    await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    # Loopback allowed on both sides, as for http_request: the MCP server runs on 127.0.0.1.
    definitions = await start_app(
        "definitions", secrets_key=Fernet.generate_key().decode(), http_allow_cidrs="127.0.0.0/8"
    )
    executor = await start_app(
        "executor",
        definitions_addr=definitions.address,
        llm_api_base=f"http://127.0.0.1:{model.port}/v1",
        llm_api_key="k",
        default_model="openai/test-model",
        http_allow_cidrs="127.0.0.0/8",
    )
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
    await defs.SetSecret(dpb.SetSecretRequest(name="MCP_TOKEN", value="mcp-s3cr3t"))
    with mcpserver.running(free_port()) as url:
        registered = await defs.RegisterMcpServer(
            dpb.RegisterMcpServerRequest(
                name="tools", url=url, headers={"Authorization": "Bearer {{ secrets.MCP_TOKEN }}"}
            )
        )
        assert sorted(t.name for t in registered.server.tools) == ["add", "lookup", "tally"]
        definition = json_format.ParseDict(
            {
                "name": "lookup-agent",
                "plan": [
                    {
                        "id": "ask",
                        "action": "agent_task",
                        "params": {"prompt": "Look alpha up.", "tools": ["mcp:tools/lookup"]},
                    }
                ],
            },
            definition_pb2.AutomationDefinition(),
        )
        made = await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition))
        model.answers = [{"tool_calls": [("mcp__tools_lookup", {"key": "alpha"})]}, "first"]
        started = (await runs.StartRun(epb.StartRunRequest(automation_id=made.automation.id))).run

        async def finished() -> executor_pb2.Run:
            got = (await runs.GetRun(epb.GetRunRequest(run_id=started.id))).run
            assert got.status == RUN.RUN_STATUS_SUCCEEDED, (got.status, got.error)
            return got

        run = await assert_eventually(finished, timeout=60)
    [call] = run.steps[0].tool_calls
    assert (call.name, call.status) == ("mcp:tools/lookup", "succeeded")
    result = value_to_py(call.result)
    assert result["value"] == "first"
    assert result["idempotency_key"] == f"{run.id}:ask:1"
    # The secret header reached the server (rendered by definitions); its echo is masked.
    assert result["authorization"] == "***"
    await nc.close()


async def test_mcp_servers_over_the_gateway(start_app: Any, owner_token: str) -> None:
    definitions = await start_app("definitions", http_allow_cidrs="127.0.0.0/8")
    gateway = Gateway(
        GatewaySettings(
            definitions_addr=definitions.address,
            scheduler_addr="127.0.0.1:1",
            executor_addr="127.0.0.1:1",
            drafter_addr="127.0.0.1:1",
            shutdown_grace_seconds=1.0,
        )
    )
    headers = {"Authorization": f"Bearer {owner_token}"}
    async with (
        serve_asgi(gateway) as base,
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http,
    ):
        r = await http.put("/v1/mcp-servers/meta", json={"url": "http://169.254.169.254/mcp"})
        assert r.status_code == 400, r.text
        by_type = {d["@type"]: d for d in r.json()["details"]}
        violations = by_type["type.googleapis.com/google.rpc.BadRequest"]["fieldViolations"]
        assert [v["field"] for v in violations] == ["url"]
        with mcpserver.running(free_port()) as url:
            r = await http.put("/v1/mcp-servers/tools", json={"url": url, "headers": {"X-A": "b"}})
            assert r.status_code == 200, r.text
            assert {t["name"] for t in r.json()["server"]["tools"]} == {"add", "lookup", "tally"}
        r = await http.get("/v1/mcp-servers")
        assert [(s["name"], s["headerNames"]) for s in r.json()["servers"]] == [("tools", ["X-A"])]
        assert (await http.delete("/v1/mcp-servers/tools")).status_code == 200
        assert (await http.delete("/v1/mcp-servers/tools")).status_code == 404
