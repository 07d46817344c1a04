"""MCP servers: registration (SSRF policy, secret headers), listing, and `mcp:` tools on save,
against a real MCP server (the official SDK's, streamable HTTP on loopback)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet

from autom.api.definitions.v1 import audit_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp
from autom.core.protoconv import struct_to_dict
from autom.definitions.app import build_app
from autom.definitions.convert import definition_to_proto
from autom.definitions.settings import DefinitionsSettings
from autom.devstack import mcpserver
from autom.devstack.ports import free_port
from autom.devstack.testing import service_keys

from .test_definitions_access import code_of
from .test_definitions_api import field_violations, stub

TokenFor = Callable[..., str]
AUTH = {"Authorization": "Bearer {{ secrets.GH_TOKEN }}"}


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with mcpserver.running(free_port()) as url:
        yield url


@pytest.fixture
async def app(database_url: str, nats_url: str, signing_key: str) -> AsyncIterator[GrpcApp]:
    # Loopback allowed as the http_request tests allow it: the MCP server runs on 127.0.0.1.
    settings = DefinitionsSettings(
        database_url=database_url,
        nats_url=nats_url,
        grpc_port=0,
        secrets_key=Fernet.generate_key().decode(),
        http_allow_cidrs="127.0.0.0/8",
        **service_keys("definitions", signing_key),
    )
    application = await build_app(settings)
    await application.start()
    yield application
    await application.stop()


async def _registered(app: GrpcApp, token_for: TokenFor, url: str) -> Any:
    owner = stub(app, token_for(Role.OWNER))
    await owner.SetSecret(pb.SetSecretRequest(name="GH_TOKEN", value="gh-s3cr3t"))
    return await owner.RegisterMcpServer(
        pb.RegisterMcpServerRequest(name="tools", url=url, headers=AUTH)
    )


async def test_owner_registers_a_server_and_members_list_it(
    app: GrpcApp, token_for: TokenFor, signer: TokenSigner, mcp_url: str
) -> None:
    registered = await _registered(app, token_for, mcp_url)
    tools = {t.name: struct_to_dict(t.input_schema) for t in registered.server.tools}
    assert set(tools) == {"add", "lookup", "tally"}
    assert tools["add"]["required"] == ["a", "b"]

    editor = stub(app, token_for(Role.EDITOR))
    listed = await editor.ListMcpServers(pb.ListMcpServersRequest())
    assert [(s.name, s.url, list(s.header_names)) for s in listed.servers] == [
        ("tools", mcp_url, ["Authorization"])
    ]
    assert "secrets" not in str(listed) and "gh-s3cr3t" not in str(listed)
    request = pb.RegisterMcpServerRequest(name="mine", url=mcp_url)
    assert await code_of(editor.RegisterMcpServer(request)) == grpc.StatusCode.PERMISSION_DENIED
    assert (
        await code_of(editor.DeleteMcpServer(pb.DeleteMcpServerRequest(name="tools")))
        == grpc.StatusCode.PERMISSION_DENIED
    )

    # The executor gets the URL and the headers with the secret rendered; nobody else does.
    owner = stub(app, token_for(Role.OWNER))
    resolve = pb.ResolveMcpServersRequest(workspace_id="default", names=["tools", "ghost"])
    assert await code_of(owner.ResolveMcpServers(resolve)) == grpc.StatusCode.PERMISSION_DENIED
    executor = stub(app, signer.service_token("executor")[0])
    resolved = await executor.ResolveMcpServers(resolve)
    assert [(s.name, dict(s.headers)) for s in resolved.servers] == [
        ("tools", {"Authorization": "Bearer gh-s3cr3t"})
    ]
    assert list(resolved.missing) == ["ghost"]

    await owner.DeleteMcpServer(pb.DeleteMcpServerRequest(name="tools"))
    assert not (await owner.ListMcpServers(pb.ListMcpServersRequest())).servers
    audit = await owner.ListAuditEvents(audit_pb2.ListAuditEventsRequest())
    entries = [(e.action, e.target_id) for e in audit.events if e.target_type == "mcp_server"]
    assert entries == [("mcp_server.delete", "tools"), ("mcp_server.register", "tools")]
    assert "gh-s3cr3t" not in str(audit) and "secrets." not in str(audit)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": "Bad Name", "url": "http://127.0.0.1:1/mcp"}, "name"),
        # The cloud metadata address, refused even though loopback is allowed here.
        ({"name": "meta", "url": "http://169.254.169.254/mcp"}, "url"),
        ({"name": "meta", "url": "http://metadata.google.internal/mcp"}, "url"),
        ({"name": "ftp", "url": "ftp://example.com/mcp"}, "url"),
        ({"name": "nosecret", "url": "MCP", "headers": AUTH}, "headers.Authorization"),
        (
            {"name": "tmpl", "url": "MCP", "headers": {"X-Run": "{{ inputs.x }}"}},
            "headers.X-Run",
        ),
    ],
)
async def test_registration_is_validated_with_field_paths(
    app: GrpcApp, token_for: TokenFor, mcp_url: str, request_fields: dict[str, Any], field: str
) -> None:
    owner = stub(app, token_for(Role.OWNER))
    fields = dict(request_fields)
    if fields["url"] == "MCP":
        fields["url"] = mcp_url
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await owner.RegisterMcpServer(pb.RegisterMcpServerRequest(**fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value), field_violations(err.value)
    assert not (await owner.ListMcpServers(pb.ListMcpServersRequest())).servers


async def test_mcp_tools_are_checked_against_the_server_on_save(
    app: GrpcApp, token_for: TokenFor, mcp_url: str, digest: dict[str, Any]
) -> None:
    await _registered(app, token_for, mcp_url)
    owner = stub(app, token_for(Role.OWNER))
    raw = copy.deepcopy(digest)
    raw["plan"][1]["params"]["tools"] = ["http_request", "mcp:tools/add", "mcp:tools/lookup"]
    created = await owner.CreateAutomation(
        pb.CreateAutomationRequest(definition=definition_to_proto(raw))
    )
    assert created.automation.version == 1

    raw["plan"][1]["params"]["tools"] = ["mcp:tools/add", "mcp:tools/nope", "mcp:ghost/x"]
    # ValidateDefinition (the drafter's check) sees the same registry.
    checked = await owner.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(raw))
    )
    assert not checked.valid
    assert {v.field for v in checked.violations} == {
        "plan[1].params.tools[1]",
        "plan[1].params.tools[2]",
    }
    for call in (
        owner.CreateAutomation(
            pb.CreateAutomationRequest(definition=definition_to_proto({**raw, "name": "other"}))
        ),
        owner.UpdateAutomation(
            pb.UpdateAutomationRequest(
                automation_id=created.automation.id,
                version=1,
                definition=definition_to_proto(raw),
            )
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        found = field_violations(err.value)
        assert set(found) == {
            "definition.plan[1].params.tools[1]",
            "definition.plan[1].params.tools[2]",
        }, found
        assert "no tool 'nope'" in found["definition.plan[1].params.tools[1]"]
        assert "add, lookup" in found["definition.plan[1].params.tools[1]"]
        assert "no MCP server named 'ghost'" in found["definition.plan[1].params.tools[2]"]
