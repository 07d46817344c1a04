"""Attacks on DefinitionsService over real gRPC: outside `$ref`s, NUL bytes, page tokens."""

from __future__ import annotations

import base64
import json
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


async def create(api: pb_grpc.DefinitionsServiceStub, raw: dict[str, Any]) -> Any:
    return (
        await api.CreateAutomation(pb.CreateAutomationRequest(definition=definition_to_proto(raw)))
    ).automation


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda d: pb.CreateAutomationRequest(definition=_proto(d, name="a\0")), "definition.name"),
        (
            lambda d: pb.CreateAutomationRequest(definition=_proto(d), request_id="r\0"),
            "request_id",
        ),
        (
            lambda d: pb.CreateAutomationRequest(
                definition=_proto(d, plan_url="https://x/\0")
            ),
            "definition.plan[0].params.url",
        ),
        (
            lambda d: pb.CreateAutomationRequest(definition=_proto(d, tag="t\0")),
            "definition.metadata.tags[0]",
        ),
        (
            lambda d: pb.CreateAutomationRequest(definition=_proto(d, extra_key="k\0")),
            "definition.metadata.extras.k\\0",
        ),
        (lambda d: pb.GetAutomationRequest(automation_id="\0"), "automation_id"),
        (lambda d: pb.ListAutomationsRequest(name_prefix="we\0"), "name_prefix"),
        (lambda d: pb.ListAutomationsRequest(tag="\0"), "tag"),
        (lambda d: pb.ListAutomationsRequest(page_token="\0"), "page_token"),
        (
            lambda d: pb.ValidateDefinitionRequest(definition=_proto(d, name="\0")),
            "definition.name",
        ),
    ],
    ids=[
        "name", "request-id", "param", "tag", "struct-key", "get-id", "prefix", "list-tag",
        "page-token", "validate",
    ],
)  # fmt: skip
async def test_a_nul_character_in_any_string_field_is_invalid_argument_naming_it(
    definitions_app: GrpcApp,
    token_for: TokenFor,
    digest: dict[str, Any],
    build: Callable[[dict[str, Any]], Any],
    field: str,
) -> None:
    api = stub(definitions_app, token_for(Role.OWNER))
    request = build(digest)
    method = {
        "CreateAutomationRequest": api.CreateAutomation,
        "GetAutomationRequest": api.GetAutomation,
        "ListAutomationsRequest": api.ListAutomations,
        "ValidateDefinitionRequest": api.ValidateDefinition,
    }[type(request).__name__]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await method(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(err.value)


def _proto(
    raw: dict[str, Any],
    *,
    name: str | None = None,
    plan_url: str | None = None,
    tag: str | None = None,
    extra_key: str | None = None,
) -> Any:
    if name is not None:
        raw["name"] = name
    if plan_url is not None:
        raw["plan"][0]["params"]["url"] = plan_url
    if tag is not None:
        raw["metadata"]["tags"] = [tag]
    if extra_key is not None:
        raw["metadata"]["extras"] = {extra_key: "v"}
    return definition_to_proto(raw)


def _forged(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


async def test_page_tokens_are_opaque_and_any_forged_or_altered_token_is_refused(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.EDITOR))
    for i in range(3):
        raw = {**digest, "name": f"job-{i}"}
        await create(api, raw)
    first = await api.ListAutomations(pb.ListAutomationsRequest(page_size=1))
    token = first.next_page_token
    assert token
    # Not readable: the cursor (a name and an id) does not show through.
    assert "job-0" not in token
    try:
        readable = base64.urlsafe_b64decode(token + "==")
    except ValueError:
        readable = b""
    assert b"job-0" not in readable and first.automations[0].id.encode() not in readable
    second = await api.ListAutomations(pb.ListAutomationsRequest(page_size=1, page_token=token))
    assert [a.name for a in second.automations] == ["job-1"]

    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    forged = [
        altered,
        token + "x",
        _forged({"n": 1, "i": 2}),
        _forged({"n": "job-0", "i": first.automations[0].id}),
        _forged({"v": 2**70}),
        "%%%",
    ]
    for bad in forged:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.ListAutomations(pb.ListAutomationsRequest(page_token=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "page_token" in violations(err.value)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.ListAutomationVersions(
                pb.ListAutomationVersionsRequest(automation_id="job-0", page_token=bad)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "page_token" in violations(err.value)


@pytest.mark.parametrize("max_fires", [1e300, 2**53 + 1, 2**53, 1_000_000_001, -1, 2.5])
async def test_max_fires_out_of_the_bound_is_invalid(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any], max_fires: Any
) -> None:
    digest["triggers"][0]["config"]["max_fires"] = max_fires
    viewer = stub(definitions_app, token_for(Role.VIEWER))
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert not answer.valid
    assert [v.field for v in answer.violations] == ["triggers[0].config.max_fires"]


async def test_max_fires_within_the_bound_is_valid(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    digest["triggers"][0]["config"]["max_fires"] = 1_000_000_000
    viewer = stub(definitions_app, token_for(Role.VIEWER))
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert answer.valid, answer.violations


async def test_a_string_field_that_is_not_utf8_is_invalid_argument(
    definitions_app: GrpcApp, token_for: TokenFor
) -> None:
    # automation_id (field 1) as length-delimited bytes that are not UTF-8.
    raw = b"\x0a\x03\xff\xfe\x00"
    async with grpc.aio.insecure_channel(definitions_app.address) as ch:
        call = ch.unary_unary(
            "/autom.api.definitions.v1.DefinitionsService/GetAutomation",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(raw, metadata=(("authorization", f"Bearer {token_for(Role.VIEWER)}"),))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in violations(err.value)


async def test_agent_output_schema_ref_outside_the_document_is_invalid_and_never_fetched(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any], trap: Trap
) -> None:
    digest["plan"][1]["params"]["output_schema"] = {
        "type": "object",
        "properties": {"n": {"$ref": f"http://127.0.0.1:{trap.port}/n.json"}},
    }
    viewer = stub(definitions_app, token_for(Role.VIEWER))
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert [v.field for v in answer.violations] == [
        "plan[1].params.output_schema.properties.n.$ref"
    ]
    digest["plan"][1]["params"]["output_schema"] = {"type": "object", "required": "n"}
    answer = await viewer.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert [v.field for v in answer.violations] == ["plan[1].params.output_schema.required"]
    assert trap.hits == []
