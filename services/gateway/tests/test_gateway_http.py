"""The gateway over real HTTP (uvicorn) against fake upstreams behind the real interceptor."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from autom.core.auth import Role

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
    assert "stale" in r.json()["message"]


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


async def test_identity_headers_are_not_forwarded(client: httpx.AsyncClient, stack: Stack) -> None:
    stack.definitions.seen_metadata.clear()
    r = await client.get(
        "/v1/whoami",
        headers={
            **stack.headers(Role.EDITOR),
            "X-Autom-Principal": "user:root",
            "X-Autom-Workspace": "other",
            "X-Forwarded-User": "root",
            "Cookie": "session=abc",
        },
    )
    assert r.status_code == 200
    assert r.json() == {
        "principal": "user:editor",
        "workspaceId": "ws-1",
        "role": "ROLE_EDITOR",
        "tokenId": r.json()["tokenId"],
    }
    (seen,) = stack.definitions.seen_metadata
    assert seen["authorization"] == f"Bearer {stack.token(Role.EDITOR)}"
    forwarded = {k for k in seen if not k.startswith(("grpc-", ":"))} - {"user-agent"}
    # The request id is a correlation tag, never identity (the services log it, nothing more).
    assert forwarded == {"authorization", "x-request-id"}
    assert seen["x-request-id"] == r.headers["x-request-id"]


async def test_watch_run_streams_ndjson_as_it_happens(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    a = await _create(client, stack, "watched")
    r = await client.post(
        f"/v1/automations/{a['id']}/runs",
        json={"requestId": "r1", "inputs": {"n": 1}},
        headers=stack.headers(),
    )
    assert r.status_code == 200, r.text
    run_id = r.json()["run"]["id"]
    gate = stack.executor.gates[run_id] = asyncio.Event()
    async with client.stream("GET", f"/v1/runs/{run_id}:watch", headers=stack.headers()) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        lines = resp.aiter_lines()
        first = json.loads(await anext(lines))
        # The first event arrived while the server is still holding the rest back.
        assert first["kind"] == "snapshot" and first["run"]["status"] == "RUN_STATUS_RUNNING"
        gate.set()
        rest = [json.loads(line) async for line in lines if line]
    assert [e["kind"] for e in rest] == ["step", "terminal"]
    assert rest[0]["step"]["status"] == "STEP_STATUS_SUCCEEDED"
    assert rest[-1]["run"]["status"] == "RUN_STATUS_SUCCEEDED"


async def test_watch_error_mid_stream_is_a_last_error_line(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    a = await _create(client, stack, "watch-breaks")
    r = await client.post(f"/v1/automations/{a['id']}/runs", json={}, headers=stack.headers())
    run_id = r.json()["run"]["id"]
    stack.executor.break_after_first.add(run_id)
    r = await client.get(f"/v1/runs/{run_id}:watch", headers=stack.headers())
    assert r.status_code == 200
    first, last = (json.loads(line) for line in r.text.splitlines())
    assert first["kind"] == "snapshot"
    assert last["error"]["code"] == 14
    assert last["error"]["message"] == "executor is restarting"


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
    r = await client.get("/v1/runs/slow", headers={**stack.headers(), "X-Autom-Timeout": "100ms"})
    assert r.status_code == 504
    assert r.json()["code"] == 4
    r = await client.get("/v1/runs/slow", headers={**stack.headers(), "Request-Timeout": "0.1"})
    assert r.status_code == 504
    r = await client.get("/v1/runs/slow", headers={**stack.headers(), "X-Autom-Timeout": "soon"})
    assert r.status_code == 400


async def test_body_too_large_is_413(client: httpx.AsyncClient, stack: Stack) -> None:
    big = b'{"definition": {"description": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    r = await client.post("/v1/automations", content=big, headers=stack.headers())
    assert r.status_code == 413


async def test_healthz_aggregates_upstream_health(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
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
    before = len(stack.definitions.automations)
    headers = stack.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = json.dumps({"definition": {"name": "form-sent", "plan": []}}).encode()
    r = await client.post("/v1/automations", content=body, headers=headers)
    assert r.status_code == 415
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] == 3
    assert "Content-Type" in r.json()["message"]
    assert len(stack.definitions.automations) == before


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_bodies_and_empty_bodies_are_accepted(
    client: httpx.AsyncClient, stack: Stack, content_type: str
) -> None:
    name = f"json-{len(content_type)}"
    body = json.dumps({"definition": {"name": name, "plan": [{"id": "a", "action": "log"}]}})
    headers = {**stack.headers(), "Content-Type": content_type}
    r = await client.post("/v1/automations", content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
