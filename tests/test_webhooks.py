"""Webhook triggers over real HTTP: gateway -> executor -> definitions, PostgreSQL and NATS."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from cryptography.fernet import Fernet

from autom.core import bus
from autom.core.auth import Role, TokenSigner
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings

SECRET = "s3cret-signing-key"


@dataclass
class Hooks:
    """An HTTP client on the real gateway, as the workspace owner."""

    http: httpx.AsyncClient
    viewer: dict[str, str]


@pytest.fixture
async def hooks(
    start_app: Any, owner_token: str, signer: TokenSigner, nats_url: str
) -> AsyncIterator[Hooks]:
    # Webhook fires go through the fires stream; the test stands in for its owner (scheduler).
    nc = await nats.connect(nats_url)
    try:
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    finally:
        await nc.close()
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    executor = await start_app("executor", definitions_addr=definitions.address)
    settings = GatewaySettings(
        definitions_addr=definitions.address,
        scheduler_addr=definitions.address,
        executor_addr=executor.address,
        drafter_addr=definitions.address,
        shutdown_grace_seconds=1.0,
    )
    viewer = signer.issue(subject="user:viewer", workspace_id="default", role=Role.VIEWER)[0]
    headers = {"Authorization": f"Bearer {owner_token}"}
    async with (
        serve_asgi(Gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as c,
    ):
        r = await c.put("/v1/secrets/HOOK_KEY", json={"value": SECRET})
        assert r.status_code == 200, r.text
        yield Hooks(c, {"Authorization": f"Bearer {viewer}"})


def automation(name: str, **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "triggers": [{"type": "webhook", "config": {"secret": "HOOK_KEY", **config}}],
        "inputs": {
            "schema": {
                "type": "object",
                "required": ["ref"],
                "properties": {"ref": {"type": "string"}, "headers": {"type": "object"}},
            }
        },
        "plan": [
            {
                "id": "echo",
                "action": "transform",
                "params": {"output": "{{ trigger.type }} {{ inputs.ref }}"},
            }
        ],
    }


def signed(
    body: bytes, *, delivery: str, at: int | None = None, key: str = SECRET
) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    mac = hmac.new(key.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Autom-Timestamp": stamp,
        "X-Autom-Signature": f"sha256={mac}",
        "X-Autom-Delivery": delivery,
    }


async def create(http: httpx.AsyncClient, raw: dict[str, Any]) -> tuple[str, str]:
    r = await http.post("/v1/automations", json={"definition": raw})
    assert r.status_code == 200, r.text
    body = r.json()
    (hook,) = body["webhooks"]
    assert hook["triggerId"] == "webhook_0"
    assert hook["path"] == f"/v1/hooks/{hook['hookId']}"
    return body["automation"]["id"], hook["path"]


async def runs_of(http: httpx.AsyncClient, automation_id: str) -> list[dict[str, Any]]:
    r = await http.get("/v1/runs", params={"automationId": automation_id})
    assert r.status_code == 200, r.text
    runs: list[dict[str, Any]] = r.json().get("runs", [])
    return runs


async def test_a_signed_delivery_sent_three_times_starts_exactly_one_run(hooks: Hooks) -> None:
    http = hooks.http
    automation_id, path = await create(http, automation("on-push", headers=["X-Event"]))
    body = json.dumps({"ref": "main"}).encode()
    headers = {**signed(body, delivery="d-1"), "X-Event": "push"}
    replies = [await http.post(path, content=body, headers=headers) for _ in range(3)]
    assert [r.status_code for r in replies] == [202, 202, 202], [r.text for r in replies]
    run_ids = {r.json()["runId"] for r in replies}
    assert len(run_ids) == 1
    assert [r.json()["created"] for r in replies] == [True, False, False]
    (run_id,) = run_ids

    async def succeeded() -> dict[str, Any]:
        run = (await http.get(f"/v1/runs/{run_id}")).json()["run"]
        assert run["status"] == "RUN_STATUS_SUCCEEDED", run["status"]
        return run

    run = await assert_eventually(succeeded, timeout=10)
    assert run["triggerType"] == "webhook"
    assert run["steps"][0]["output"] == "webhook main"
    assert run["inputs"]["headers"] == {"x-event": "push"}
    assert [r["id"] for r in await runs_of(http, automation_id)] == [run_id]

    # The URL is shown to editors and owners only.
    got = await http.get(f"/v1/automations/{automation_id}")
    assert got.json()["webhooks"][0]["path"] == path
    seen = await http.get(f"/v1/automations/{automation_id}", headers=hooks.viewer)
    assert seen.status_code == 200 and not seen.json().get("webhooks")


async def test_bad_deliveries_are_refused_and_create_nothing(hooks: Hooks) -> None:
    http = hooks.http
    automation_id, path = await create(http, automation("guarded", max_body_bytes=1024))
    good = json.dumps({"ref": "main"}).encode()
    now = int(time.time())
    refused = {
        "unsigned": (good, {"Content-Type": "application/json"}, 401),
        "bad signature": (good, signed(good, delivery="x1", key="wrong"), 401),
        "stale": (good, signed(good, delivery="x2", at=now - 600), 401),
        "from the future": (good, signed(good, delivery="x3", at=now + 600), 401),
        "oversized": (
            json.dumps({"ref": "x" * 2000}).encode(),
            signed(json.dumps({"ref": "x" * 2000}).encode(), delivery="x4"),
            413,
        ),
        "invalid inputs": (b'{"ref": 7}', signed(b'{"ref": 7}', delivery="x5"), 400),
        "not json": (b"ref=main", signed(b"ref=main", delivery="x6"), 400),
    }
    for what, (body, headers, status) in refused.items():
        r = await http.post(path, content=body, headers=headers)
        assert r.status_code == status, (what, r.text)
    r = await http.post(path, content=b'{"ref": 7}', headers=signed(b'{"ref": 7}', delivery="x7"))
    assert "inputs.ref" in json.dumps(r.json()["details"])
    unknown = await http.post("/v1/hooks/wh_nope", content=good, headers=signed(good, delivery="y"))
    assert unknown.status_code == 404
    assert await runs_of(http, automation_id) == []

    # Rotation: the old URL is gone at once, the new one works.
    r = await http.post(f"/v1/automations/{automation_id}/webhooks/webhook_0:rotate", json={})
    assert r.status_code == 200, r.text
    new_path = r.json()["webhook"]["path"]
    assert new_path != path
    old = await http.post(path, content=good, headers=signed(good, delivery="z1"))
    assert old.status_code == 404
    ok = await http.post(new_path, content=good, headers=signed(good, delivery="z1"))
    assert ok.status_code == 202, ok.text
    assert [r["id"] for r in await runs_of(http, automation_id)] == [ok.json()["runId"]]


async def test_rate_limit_and_bearer_mode(hooks: Hooks) -> None:
    http = hooks.http
    automation_id, path = await create(
        http, automation("bearer", auth="bearer", rate_limit_per_minute=1)
    )
    good = b'{"ref": "main"}'
    wrong = await http.post(path, content=good, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    accepted, limited = [], None
    # Limit 1 per minute: within any minute the second delivery is refused.
    for _ in range(4):
        r = await http.post(
            path,
            content=good,
            headers={"Authorization": f"Bearer {SECRET}", "X-Autom-Delivery": uuid.uuid4().hex},
        )
        if r.status_code == 429:
            limited = r
            break
        assert r.status_code == 202, r.text
        accepted.append(r.json()["runId"])
    assert limited is not None
    assert "rate limit" in limited.json()["message"]
    assert sorted(r["id"] for r in await runs_of(http, automation_id)) == sorted(accepted)


async def test_the_workspace_webhook_quota_refuses_then_recovers(
    hooks: Hooks, signer: TokenSigner
) -> None:
    http = hooks.http
    admin = {"Authorization": f"Bearer {signer.admin_token('ops')}"}
    quotas = "/v1/workspaces/default/quotas"
    r = await http.put(quotas, json={"limits": {"webhook_requests_per_minute": 1}}, headers=admin)
    assert r.status_code == 200, r.text
    _, path = await create(http, automation("quota-hook"))
    good = b'{"ref": "main"}'

    async def deliver() -> httpx.Response:
        return await http.post(path, content=good, headers=signed(good, delivery=uuid.uuid4().hex))

    statuses = []
    # One per minute: within any minute the second delivery is refused.
    for _ in range(4):
        r = await deliver()
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    info = next(d for d in r.json()["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "quota_exceeded"
    assert info["metadata"]["limit_name"] == "webhook_requests_per_minute"
    assert info["metadata"]["limit"] == "1"

    r = await http.put(quotas, json={"reset": ["webhook_requests_per_minute"]}, headers=admin)
    assert r.status_code == 200, r.text

    async def accepted() -> None:
        assert (await deliver()).status_code == 202

    await assert_eventually(accepted, timeout=10)
