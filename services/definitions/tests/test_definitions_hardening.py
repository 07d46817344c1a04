"""Attacks on DefinitionsService over real gRPC: outside `$ref`s, NUL bytes, page tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core.auth import Role
from autom.core.grpcserver import GrpcApp, channel
from autom.definitions.convert import definition_to_proto

TokenFor = Callable[..., str]


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


def stub(app: GrpcApp, token: str) -> pb_grpc.DefinitionsServiceStub:
    return pb_grpc.DefinitionsServiceStub(channel(app.address, token))


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.update({v.field: v.description for v in br.field_violations})
    return out


@pytest.mark.parametrize(
    "ref",
    ["http://127.0.0.1:{port}/schema.json", "file:///etc/passwd", "#/$defs/missing"],
    ids=["http", "file", "dangling-pointer"],
)
async def test_inputs_schema_ref_outside_the_document_is_invalid_and_never_fetched(
    definitions_app: GrpcApp,
    token_for: TokenFor,
    digest: dict[str, Any],
    trap: Trap,
    ref: str,
) -> None:
    digest["inputs"]["schema"]["properties"]["repo"] = {"$ref": ref.format(port=trap.port)}
    viewer = stub(definitions_app, token_for(Role.VIEWER))
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert not answer.valid
    assert [v.field for v in answer.violations] == ["inputs.schema.properties.repo.$ref"]
    editor = stub(definitions_app, token_for(Role.EDITOR))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await editor.CreateAutomation(
            pb.CreateAutomationRequest(definition=definition_to_proto(digest))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "definition.inputs.schema.properties.repo.$ref" in violations(err.value)
    assert trap.hits == []


async def test_inputs_schema_refs_inside_the_document_still_resolve(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    schema = digest["inputs"]["schema"]
    schema["$defs"] = {"repo": {"type": "string", "pattern": "^[a-z]+/[a-z]+$"}}
    schema["properties"]["repo"] = {"$ref": "#/$defs/repo"}
    viewer = stub(definitions_app, token_for(Role.VIEWER))
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert answer.valid, answer.violations
    digest["triggers"][0]["inputs"]["repo"] = "NOT A REPO"
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert [v.field for v in answer.violations] == ["triggers[0].inputs.repo"]
