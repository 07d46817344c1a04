"""Bad bytes over real HTTP through the real gateway to the real definitions service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from autom.core.grpcserver import GrpcApp
from autom.devstack.asgi import serve_asgi
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings


@pytest.fixture
async def client(
    start_app: Any, signing_key: str, owner_token: str
) -> AsyncIterator[httpx.AsyncClient]:
    definitions: GrpcApp = await start_app("definitions")
    settings = GatewaySettings(
        definitions_addr=definitions.address,
        scheduler_addr=definitions.address,
        executor_addr=definitions.address,
        drafter_addr=definitions.address,
        shutdown_grace_seconds=1.0,
    )
    headers = {"Authorization": f"Bearer {owner_token}"}
    async with (
        serve_asgi(Gateway(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as c,
    ):
        yield c


DEFINITION = {
    "name": "nightly",
    "triggers": [{"type": "schedule", "config": {"cron": "0 3 * * *", "timezone": "UTC"}}],
    "plan": [{"id": "hello", "action": "log", "params": {"message": "hi"}}],
}


def _fields(body: dict[str, Any]) -> list[str]:
    return [v["field"] for d in body.get("details", []) for v in d.get("fieldViolations", [])]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/automations", {"definition": {**DEFINITION, "name": "a\u0000"}},
         "definition.name"),
        ("POST", "/v1/automations",
         {"definition": {**DEFINITION, "plan": [{"id": "x", "action": "log",
                                                 "params": {"message": "\u0000"}}]}},
         "definition.plan[0].params.message"),
        ("POST", "/v1/automations", {"definition": DEFINITION, "requestId": "\u0000"},
         "request_id"),
        ("GET", "/v1/automations/%00", None, "automation_id"),
        ("GET", "/v1/automations?namePrefix=%00", None, "name_prefix"),
        ("POST", "/v1/automations:validate", {"definition": {**DEFINITION, "name": "\u0000"}},
         "definition.name"),
    ],
)  # fmt: skip
async def test_a_nul_character_anywhere_is_400_naming_the_field(
    client: httpx.AsyncClient, method: str, path: str, body: Any, field: str
) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 3
    assert field in _fields(r.json())


async def test_crafted_page_tokens_are_400_page_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/automations", json={"definition": DEFINITION})
    assert r.status_code == 200, r.text
    for token in ("eyJuIjoxLCJpIjoyfQ==", "eyJ2IjogMTE4MDU5MTYyMDcxNzQxMTMwMzQyNH0="):
        r = await client.get("/v1/automations", params={"pageToken": token})
        assert r.status_code == 400, r.text
        assert _fields(r.json()) == ["page_token"]
        r = await client.get("/v1/automations/nightly/versions", params={"pageToken": token})
        assert r.status_code == 400, r.text
        assert _fields(r.json()) == ["page_token"]


async def test_a_form_body_is_415_and_creates_nothing(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/automations",
        content=b"definition=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["code"] == 3
    listed = await client.get("/v1/automations")
    assert listed.json().get("automations", []) == []
