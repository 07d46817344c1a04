"""Run-time guards of the engine: outside `$ref`s are never fetched, derived secrets masked."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

Harness = Any


class Trap:
    """A loopback HTTP server that must never be asked anything."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.json_response({"type": "string"})


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    trap = Trap()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", trap.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    trap.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield trap
    await runner.cleanup()


def plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "h", "plan": list(steps)}


async def test_inputs_schema_with_an_outside_ref_fails_the_run_without_a_fetch(
    harness: Harness, trap: Trap
) -> None:
    definition = plan({"id": "a", "action": "transform", "params": {"output": 1}})
    definition["inputs"] = {
        "schema": {
            "type": "object",
            "properties": {"repo": {"$ref": f"http://127.0.0.1:{trap.port}/s.json"}},
        }
    }
    row = await harness.run(definition, {"repo": "x"})
    assert row.status == "failed"
    assert row.error["type"] == "DispatchError"
    assert row.error["fields"] == ["inputs.schema.properties.repo.$ref"]
    assert row.steps == []
    assert trap.hits == []


async def test_inputs_schema_refs_inside_the_document_validate_at_run_time(
    harness: Harness,
) -> None:
    definition = plan({"id": "a", "action": "transform", "params": {"output": 1}})
    definition["inputs"] = {
        "schema": {
            "$defs": {"repo": {"type": "string"}},
            "type": "object",
            "properties": {"repo": {"$ref": "#/$defs/repo"}},
        }
    }
    row = await harness.run(definition, {"repo": 5})
    assert row.status == "failed"
    assert row.error["fields"] == ["inputs.repo"]
    row = await harness.run(definition, {"repo": "octo/widgets"})
    assert row.status == "succeeded"


@pytest.mark.parametrize(
    ("expression", "leak"),
    [
        ("secrets.TOKEN | upper", "S3CR3T-VALUE"),
        ("secrets.TOKEN | title", "S3Cr3T-Value"),
        ("secrets.TOKEN | capitalize", "S3cr3t-value"),
        ("secrets.TOKEN | reverse", "eulav-t3rc3s"),
        ("secrets.TOKEN | b64encode", base64.b64encode(b"s3cr3t-value").decode()),
        ("('bot:' ~ secrets.TOKEN) | b64encode", base64.b64encode(b"bot:s3cr3t-value").decode()),
        ("secrets.TOKEN | urlencode", "s3cr3t-value"),
        ("{'t': secrets.TOKEN} | tojson", "s3cr3t-value"),
    ],
)
async def test_values_derived_from_a_secret_are_masked_in_step_records(
    harness: Harness, expression: str, leak: str
) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "transform", "params": {"output": f"<{{{{ {expression} }}}}>"}})
    )
    assert row.status == "succeeded"
    output = next(r for r in row.steps if r["step_id"] == "a")["output"]
    assert "***" in output
    assert leak not in str(row.steps)
    assert leak.lower() not in str(row.steps).lower()
