"""/openapi.json, /docs and a bounded fuzz run of a third-party OpenAPI fuzzer."""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import httpx
import pytest
import schemathesis

from autom.api.definitions.v1 import definitions_service_pb2
from autom.api.drafter.v1 import drafter_service_pb2
from autom.api.executor.v1 import executor_service_pb2
from autom.api.scheduler.v1 import scheduler_service_pb2

Stack = Any  # the `stack` fixture of conftest.py

# Fuzzed against the real services. All operations pass too, at about twice the time: this
# subset keeps the suite's time where it was.
FUZZED = [
    "DefinitionsService_ValidateDefinition",
    "DefinitionsService_CreateAutomation",
    "DefinitionsService_GetAutomation",
    "DefinitionsService_ListAutomations",
    "DefinitionsService_UpdateAutomation",
    "DefinitionsService_PauseAutomation",
    "DefinitionsService_DeleteAutomation",
    "DefinitionsService_WhoAmI",
    "ExecutorService_StartRun",
    "ExecutorService_GetRun",
    "ExecutorService_ListRuns",
    "ExecutorService_CancelRun",
    "ExecutorService_WatchRun",
    "SchedulerService_PreviewSchedule",
]


def _annotated_methods() -> set[str]:
    from google.api import annotations_pb2

    out = set()
    for module in (
        definitions_service_pb2,
        scheduler_service_pb2,
        executor_service_pb2,
        drafter_service_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.GetOptions().HasExtension(annotations_pb2.http):
                    out.add(f"/{service.full_name}/{method.name}")
    return out


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_every_annotated_rpc_is_exactly_one_operation(client: httpx.AsyncClient) -> None:
    doc = await _openapi(client)
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert sorted(op["x-grpc-method"] for op in operations) == sorted(_annotated_methods())
    # ResolveSecrets has no http rule: it must not be reachable over HTTP.
    assert not any("ResolveSecrets" in op["operationId"] for op in operations)


async def test_openapi_is_a_valid_openapi_31_document(client: httpx.AsyncClient) -> None:
    doc = await _openapi(client)
    assert doc["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()
    assert len(list(schema.get_all_operations())) == len(_annotated_methods())


async def test_openapi_describes_fields_from_proto_comments(client: httpx.AsyncClient) -> None:
    doc = await _openapi(client)
    schemas = doc["components"]["schemas"]
    create = schemas["autom.api.definitions.v1.CreateAutomationRequest"]
    assert create["description"] == (
        "CreateAutomationRequest creates an automation in the caller's workspace."
    )
    assert create["properties"]["requestId"]["description"].startswith("Idempotency key")
    assert create["additionalProperties"] is False
    automation = schemas["autom.api.definitions.v1.Automation"]["properties"]
    assert automation["version"]["type"] == ["string", "integer"]
    assert automation["createTime"] == {
        "type": "string",
        "format": "date-time",
        "description": "Creation time.",
    }
    status = schemas["autom.api.definitions.v1.AutomationStatus"]
    assert "AUTOMATION_STATUS_PAUSED" in status["enum"]
    assert "Triggers fire." in status["description"]
    op = doc["paths"]["/v1/automations"]["post"]
    assert op["summary"] == "Creates an automation (idempotent on request_id)"
    assert op["security"] == [{"bearerAuth": []}]
    assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/google.rpc.Status"
    }
    watch = doc["paths"]["/v1/runs/{run_id}:watch"]["get"]["responses"]["200"]
    assert list(watch["content"]) == ["application/x-ndjson"]
    params = {p["name"]: p for p in doc["paths"]["/v1/runs"]["get"]["parameters"]}
    assert params["createdAfter"]["schema"]["format"] == "date-time"
    assert params["pageSize"]["schema"]["minimum"] == 0
    assert params["pageSize"]["schema"]["maximum"] == 500
    assert params["status"]["description"] == "Only runs in this state."
    assert doc["paths"]["/v1/automations/{automation_id}"]["put"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["properties"].keys() == {"requestId", "version", "definition"}


async def test_every_protected_operation_answers_401_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["security"], f"{method} {path} is not protected"
            url = re.sub(r"\{[^}]+\}", "some-id", path)
            r = await client.request(method.upper(), url, json={})
            assert r.status_code == 401, f"{method} {path}: {r.status_code} {r.text}"
            assert r.json()["code"] == 16
            checked += 1
    assert checked == len(_annotated_methods())


async def test_docs_page_works_offline(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    # Self-contained: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert 'fetch("openapi.json")' in html


@pytest.mark.timeout(120)
async def test_openapi_fuzzer_finds_no_server_error_or_contradiction(stack: Stack) -> None:
    token = stack.token()
    args = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{stack.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        "5",
        "--seed",
        "7",
        "--generation-database",
        "none",
        "--phases",
        "coverage,fuzzing",
        # The services validate beyond the schema (names, step ids, action params): a 400 for
        # schema-valid data is the service's business rule, not a contradiction of the document.
        "--exclude-checks",
        "positive_data_acceptance",
        "--no-color",
    ]
    for operation_id in FUZZED:
        args += ["--include-operation-id", operation_id]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*", "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=110)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert f"Tested: {len(FUZZED)}" in text, text
