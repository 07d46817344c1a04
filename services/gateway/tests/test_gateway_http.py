"""The gateway over real HTTP (uvicorn) in front of the real services over real gRPC."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest

from autom.core.auth import Role
from autom.devstack.testing import TEST_SIGNING_KEY, start_service

Stack = Any  # the `stack` fixture of conftest.py

DEFINITION = {
    "name": "nightly",
    "description": "Says hello",
    "triggers": [{"type": "schedule", "config": {"cron": "0 3 * * *", "timezone": "UTC"}}],
    "plan": [{"id": "hello", "action": "log", "params": {"message": "hi"}}],
    "execution": {"timeout": "15m", "retry": {"maxRetries": 2, "backoff": "exponential"}},
    "metadata": {"tags": ["demo"]},
}


def _definition(name: str) -> dict[str, Any]:
    return {**DEFINITION, "name": name}


async def _create(client: httpx.AsyncClient, stack: Stack, name: str) -> dict[str, Any]:
    r = await client.post(
        "/v1/automations", json={"definition": _definition(name)}, headers=stack.headers()
    )
    assert r.status_code == 200, r.text
    automation: dict[str, Any] = r.json()["automation"]
    return automation


async def test_create_and_get_round_trip_canonical_json(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    created = await _create(client, stack, "round-trip")
    # lowerCamelCase, enum names, int64 as a string, timestamps as RFC 3339 strings.
    assert created["status"] == "AUTOMATION_STATUS_ACTIVE"
    assert created["version"] == "1"
    assert created["createTime"].endswith("Z")
    assert created["definition"]["execution"]["retry"]["maxRetries"] == 2
    assert created["definition"]["plan"][0]["params"] == {"message": "hi"}

    r = await client.get(f"/v1/automations/{created['id']}", headers=stack.headers())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json()["automation"] == created
    # Fields without presence are printed even when default (e.g. pauseNote).
    assert r.json()["automation"]["pauseNote"] == ""


async def test_query_parameters_fill_the_request(client: httpx.AsyncClient, stack: Stack) -> None:
    await _create(client, stack, "query-a")
    b = await _create(client, stack, "query-b")
    await client.post(f"/v1/automations/{b['id']}:pause", json={}, headers=stack.headers())
    r = await client.get(
        "/v1/automations",
        params={"status": "AUTOMATION_STATUS_PAUSED", "namePrefix": "query-", "pageSize": "10"},
        headers=stack.headers(),
    )
    assert r.status_code == 200, r.text
    assert [a["name"] for a in r.json()["automations"]] == ["query-b"]
    # Proto field names are accepted too, and enum numbers.
    r = await client.get(
        "/v1/automations", params={"name_prefix": "query-", "status": "1"}, headers=stack.headers()
    )
    assert [a["name"] for a in r.json()["automations"]] == ["query-a"]


async def test_path_variable_wins_and_version_accepts_string_or_number(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    a = await _create(client, stack, "put-me")
    body = {"automation_id": "ignored", "version": "1", "definition": _definition("put-me")}
    r = await client.put(f"/v1/automations/{a['id']}", json=body, headers=stack.headers())
    assert r.status_code == 200, r.text
    assert r.json()["automation"]["version"] == "2"
    body["version"] = 2
    r = await client.put(f"/v1/automations/{a['id']}", json=body, headers=stack.headers())
    assert r.json()["automation"]["version"] == "3"


async def test_stale_version_is_409_aborted(client: httpx.AsyncClient, stack: Stack) -> None:
    a = await _create(client, stack, "stale")
    body = {"version": "7", "definition": _definition("stale")}
    r = await client.put(f"/v1/automations/{a['id']}", json=body, headers=stack.headers())
    assert r.status_code == 409
    assert r.json()["code"] == 10  # ABORTED
    assert "automation is at version 1, not 7" in r.json()["message"]


async def test_validation_error_is_400_with_field_violations(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    bad = {**DEFINITION, "name": "Bad Name", "plan": [{"id": "1x", "action": "log"}]}
    r = await client.post("/v1/automations", json={"definition": bad}, headers=stack.headers())
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 3
    by_type = {d["@type"]: d for d in body["details"]}
    bad_request = by_type["type.googleapis.com/google.rpc.BadRequest"]
    fields = [v["field"] for v in bad_request["fieldViolations"]]
    assert fields == ["definition.name", "definition.plan[0].id"]
    assert by_type["type.googleapis.com/google.rpc.ErrorInfo"]["reason"] == "validation_error"
    assert "Traceback" not in r.text


async def test_not_found_and_already_exists(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.get("/v1/automations/nope", headers=stack.headers())
    assert r.status_code == 404
    assert r.json()["code"] == 5
    await _create(client, stack, "twice")
    r = await client.post(
        "/v1/automations", json={"definition": _definition("twice")}, headers=stack.headers()
    )
    assert r.status_code == 409
    assert r.json()["code"] == 6


async def test_unknown_json_field_is_400_before_any_upstream_call(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await client.post(
        "/v1/automations",
        json={"definition": {**DEFINITION, "colour": "blue"}},
        headers=stack.headers(),
    )
    assert r.status_code == 400
    violations = r.json()["details"][1]["fieldViolations"]
    assert violations == [{"field": "definition.colour", "description": "is not a known field"}]


async def test_type_errors_name_the_field(client: httpx.AsyncClient, stack: Stack) -> None:
    cases = [
        ({"definition": {"plan": [{"id": 3}]}}, "definition.plan[0].id"),
        ({"definition": {"name": None}}, "definition.name"),
        ({"paused": "yes"}, "paused"),
        (
            {"definition": {"execution": {"retry": {"maxRetries": 2**40}}}},
            "definition.execution.retry.maxRetries",
        ),
    ]
    for body, field in cases:
        r = await client.post("/v1/automations", json=body, headers=stack.headers())
        assert r.status_code == 400, body
        assert r.json()["details"][1]["fieldViolations"][0]["field"] == field
    r = await client.post(
        "/v1/automations",
        content=b"{not json",
        headers={**stack.headers(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]
    r = await client.get("/v1/automations", params={"pageSize": "ten"}, headers=stack.headers())
    assert r.status_code == 400
    r = await client.get("/v1/automations", params={"colour": "x"}, headers=stack.headers())
    assert r.status_code == 400
    r = await client.get("/v1/runs", params={"status": "RUN_STATUS_NOPE"}, headers=stack.headers())
    assert r.status_code == 400


async def test_ranges_stated_in_comments_are_enforced(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # "Maximum results (default 50, max 500)": 0..500, in the query and in a body alike.
    for size in ("-1", "501"):
        r = await client.get("/v1/runs", params={"pageSize": size}, headers=stack.headers())
        assert r.status_code == 400, size
        assert r.json()["details"][1]["fieldViolations"][0]["field"] == "pageSize"
    r = await client.get("/v1/runs", params={"pageSize": "500"}, headers=stack.headers())
    assert r.status_code == 200
    r = await client.post(
        "/v1/schedules:preview", json={"cron": "* * * * *", "count": 101}, headers=stack.headers()
    )
    assert r.status_code == 400
    assert r.json()["details"][1]["fieldViolations"] == [
        {"field": "count", "description": "must be in [0, 100]"}
    ]


async def test_missing_token_is_401_and_bad_token_is_401(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await client.get("/v1/automations")
    assert r.status_code == 401
    assert r.json()["code"] == 16
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/v1/automations", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert r.json()["message"] == "invalid token"


async def test_viewer_cannot_create_403(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.post(
        "/v1/automations",
        json={"definition": _definition("viewer-made")},
        headers=stack.headers(Role.VIEWER),
    )
    assert r.status_code == 403
    assert r.json()["code"] == 7


IDENTITY_HEADERS = {
    "X-Autom-Principal": "user:root",
    "X-Autom-Workspace": "other",
    "X-Forwarded-User": "root",
    "Cookie": "session=abc",
}


async def test_identity_headers_are_not_forwarded(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.get("/v1/whoami", headers={**stack.headers(Role.EDITOR), **IDENTITY_HEADERS})
    assert r.status_code == 200
    assert r.json() == {
        "principal": "user:editor",
        "workspaceId": "ws-1",
        "role": "ROLE_EDITOR",
        "tokenId": r.json()["tokenId"],
    }


async def test_only_the_token_and_the_request_id_go_upstream(stack: Stack) -> None:
    # What the gateway sends is seen where it arrives: a bare gRPC endpoint that records the
    # metadata of each call and implements nothing (so the gateway answers 501).
    seen: list[dict[str, str]] = []

    class Record(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> None:
            seen.append({k: v for k, v in details.invocation_metadata if isinstance(v, str)})
            return None

    probe = grpc.aio.server()
    probe.add_generic_rpc_handlers([Record()])
    port = probe.add_insecure_port("127.0.0.1:0")
    await probe.start()
    try:
        spawned = stack.spawn(definitions_addr=f"127.0.0.1:{port}")
        async with spawned as url, httpx.AsyncClient(base_url=url, trust_env=False) as c:
            headers = {**stack.headers(Role.EDITOR), **IDENTITY_HEADERS}
            r = await c.get("/v1/whoami", headers=headers)
    finally:
        await probe.stop(None)
    assert r.status_code == 501
    (sent,) = seen
    assert sent["authorization"] == f"Bearer {stack.token(Role.EDITOR)}"
    forwarded = {k for k in sent if not k.startswith(("grpc-", ":"))} - {"user-agent"}
    # The request id is a correlation tag, never identity (the services log it, nothing more).
    assert forwarded == {"authorization", "x-request-id"}
    assert sent["x-request-id"] == r.headers["x-request-id"]


WAITS = {
    "name": "watched",
    "plan": [{"id": "nap", "action": "wait", "params": {"duration": "1h"}}],
}


async def _start_waiting_run(client: httpx.AsyncClient, stack: Stack, name: str) -> str:
    r = await client.post(
        "/v1/automations", json={"definition": {**WAITS, "name": name}}, headers=stack.headers()
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/automations/{r.json()['automation']['id']}/runs",
        json={"requestId": f"{name}-1", "inputs": {"n": 1}},
        headers=stack.headers(),
    )
    assert r.status_code == 200, r.text
    run_id: str = r.json()["run"]["id"]
    return run_id


async def test_watch_run_streams_ndjson_as_it_happens(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    run_id = await _start_waiting_run(client, stack, "watched")
    async with client.stream("GET", f"/v1/runs/{run_id}:watch", headers=stack.headers()) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = resp.aiter_lines()
        first = json.loads(await anext(lines))
        # The first event arrived while the run still waits: it ends only when cancelled.
        assert first["kind"] == "snapshot"
        assert first["run"]["status"] in ("RUN_STATUS_PENDING", "RUN_STATUS_RUNNING")
        r = await client.post(f"/v1/runs/{run_id}:cancel", json={}, headers=stack.headers())
        assert r.status_code == 200, r.text
        rest = [json.loads(line) async for line in lines if line]
    assert rest[-1]["kind"] == "terminal"
    assert rest[-1]["run"]["status"] == "RUN_STATUS_CANCELLED"


async def test_watch_error_mid_stream_is_a_last_error_line(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    run_id = await _start_waiting_run(client, stack, "watch-breaks")
    # A second executor of the same deployment serves the watch, and stops in the middle.
    services = stack.services
    executor = await start_service(
        "executor",
        services.database_url,
        services.nats_url,
        TEST_SIGNING_KEY,
        definitions_addr=services.definitions,
        shutdown_grace_seconds=0.2,
    )
    try:
        spawned = stack.spawn(executor_addr=executor.address)
        async with spawned as url, httpx.AsyncClient(base_url=url, trust_env=False) as c:
            watch = c.stream("GET", f"/v1/runs/{run_id}:watch", headers=stack.headers())
            async with watch as r:
                assert r.status_code == 200
                lines = r.aiter_lines()
                first = json.loads(await anext(lines))
                await executor.stop()
                rest = [json.loads(line) async for line in lines if line]
    finally:
        await executor.stop()
        await client.post(f"/v1/runs/{run_id}:cancel", json={}, headers=stack.headers())
    assert first["kind"] == "snapshot"
    (last,) = rest
    assert last["error"]["code"] == 14
    assert last["error"]["message"] == "the executor service is unavailable; retry later"


async def test_watch_unknown_run_keeps_its_http_status(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await client.get("/v1/runs/missing:watch", headers=stack.headers())
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"


async def test_verbs_and_ids_with_colons_route_correctly(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # A known verb makes the path that verb's resource; other methods are 405.
    r = await client.get("/v1/automations/a:pause", headers=stack.headers())
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    # An id that holds a colon is sent encoded, or ends in something that is no verb.
    r = await client.get("/v1/automations/a%3Apause", headers=stack.headers())
    assert r.status_code == 404
    assert "'a:pause'" in r.json()["message"]
    r = await client.get("/v1/automations/auto:trigger_0", headers=stack.headers())
    assert "'auto:trigger_0'" in r.json()["message"]
    # An encoded slash stays inside the id.
    r = await client.get("/v1/automations/a%2Fb", headers=stack.headers())
    assert "'a/b'" in r.json()["message"]


async def test_unknown_route_404_and_wrong_method_405(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    r = await client.get("/v1/nothing-here", headers=stack.headers())
    assert r.status_code == 404
    assert r.json()["code"] == 5
    r = await client.patch("/v1/automations", headers=stack.headers())
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["code"] == 12
    r = await client.post("/openapi.json")
    assert r.status_code == 405


async def test_timeout_header_sets_the_deadline(client: httpx.AsyncClient, stack: Stack) -> None:
    # A draft waits for the model. Answered in time, it is drafted (the first call also loads
    # the model client, which holds up the whole process: no deadline may run meanwhile).
    llm = stack.services.llm
    draft = {"intent": "log a heartbeat every minute", "timezone": "UTC"}
    beat = {"id": "beat", "action": "log", "params": {"message": "beat"}}
    llm.reply({"definition": {"name": "beat", "plan": [beat]}})
    slack = {**stack.headers(), "X-Autom-Timeout": "60s"}
    r = await client.post("/v1/drafts", json=draft, headers=slack, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["draft"]["status"] == "DRAFT_STATUS_PENDING"
    # Then the scripted model answers only after a minute. The deadlines leave the draft
    # time to reach the model: it is cancelled waiting for the answer, not on its way there.
    for timeout in ({"X-Autom-Timeout": "2s"}, {"Request-Timeout": "2"}):
        llm.slow(60)
        r = await client.post("/v1/drafts", json=draft, headers={**stack.headers(), **timeout})
        assert r.status_code == 504, r.text
        assert r.json()["code"] == 4
    llm.clear()
    r = await client.post(
        "/v1/drafts", json=draft, headers={**stack.headers(), "X-Autom-Timeout": "soon"}
    )
    assert r.status_code == 400


async def test_body_too_large_is_413(client: httpx.AsyncClient, stack: Stack) -> None:
    big = b'{"definition": {"description": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    r = await client.post("/v1/automations", content=big, headers=stack.headers())
    assert r.status_code == 413


async def test_healthz_aggregates_upstream_health(stack: Stack) -> None:
    # The services share the test's event loop: a busy machine must not turn them UNREACHABLE.
    spawned = stack.spawn(health_timeout_seconds=30)
    async with spawned as url, httpx.AsyncClient(base_url=url, trust_env=False) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "SERVING",
        "services": {k: "SERVING" for k in ("definitions", "scheduler", "executor", "drafter")},
    }


async def test_unreachable_upstream_is_503_without_internals(stack: Stack) -> None:
    spawned = stack.spawn(drafter_addr="127.0.0.1:1", health_timeout_seconds=0.5)
    async with spawned as url, httpx.AsyncClient(base_url=url, trust_env=False) as c:
        r = await c.get("/v1/drafts", headers={**stack.headers(), "X-Autom-Timeout": "2s"})
        assert r.status_code == 503
        assert r.json()["message"] == "the drafter service is unavailable; retry later"
        assert "127.0.0.1" not in r.text
        r = await c.get("/healthz")
        assert r.status_code == 503
        assert r.json()["services"]["drafter"] == "UNREACHABLE"
        assert r.json()["services"]["definitions"] == "SERVING"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        None,
    ],
)
async def test_a_body_that_is_not_declared_json_is_415(
    client: httpx.AsyncClient, stack: Stack, content_type: str | None
) -> None:
    headers = stack.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps({"definition": {"name": "form-sent", "plan": []}}).encode()
    r = await client.post("/v1/automations", content=body, headers=headers)
    assert r.status_code == 415
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == 3
    assert "Content-Type" in r.json()["message"]
    r = await client.get("/v1/automations", params={"namePrefix": "form-"}, headers=stack.headers())
    assert r.json()["automations"] == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_bodies_and_empty_bodies_are_accepted(
    client: httpx.AsyncClient, stack: Stack, content_type: str
) -> None:
    name = f"json-{len(content_type)}"
    step = {"id": "a", "action": "log", "params": {"message": "hi"}}
    body = json.dumps({"definition": {"name": name, "plan": [step]}})
    headers = {**stack.headers(), "Content-Type": content_type}
    r = await client.post("/v1/automations", content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
