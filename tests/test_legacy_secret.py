"""A deployment configured only with the legacy AUTOM_AUTH_SECRET still runs (derived keys)."""

from __future__ import annotations

from typing import Any

import grpc
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
from autom.core.auth import Role, TokenSigner, legacy_private_key
from autom.core.grpcserver import GrpcApp, channel
from autom.definitions.app import build_app as build_definitions
from autom.definitions.settings import DefinitionsSettings
from autom.devstack.eventually import assert_eventually
from autom.executor.app import build_app as build_executor
from autom.executor.settings import ExecutorSettings

SECRET = "legacy-shared-secret-" + "z" * 32


async def test_a_legacy_auth_secret_alone_signs_verifies_and_runs(
    database_url: str, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_url)  # the test stands in for the fires stream's owner
    try:
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    finally:
        await nc.close()
    common: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        "grpc_port": 0,
        "auth_secret": SECRET,
    }
    started: list[GrpcApp] = []
    try:
        definitions = await build_definitions(
            DefinitionsSettings(**common, secrets_key=Fernet.generate_key().decode())
        )
        await definitions.start()
        started.append(definitions)
        # The executor obtains its service token with the credential derived from the secret.
        executor = await build_executor(
            ExecutorSettings(**common, definitions_addr=definitions.address)
        )
        await executor.start()
        started.append(executor)
        owner = TokenSigner(legacy_private_key(SECRET)).issue(
            subject="user:owner", workspace_id="default", role=Role.OWNER
        )[0]
        defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner))
        runs = egrpc.ExecutorServiceStub(channel(executor.address, owner))
        raw = {
            "name": "legacy",
            "plan": [{"id": "a", "action": "wait", "params": {"duration": "0s"}}],
        }
        created = (
            await defs.CreateAutomation(
                dpb.CreateAutomationRequest(
                    definition=json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
                )
            )
        ).automation
        run_id = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run.id

        async def succeeded() -> None:
            got = (await runs.GetRun(epb.GetRunRequest(run_id=run_id))).run
            assert got.status == executor_pb2.RUN_STATUS_SUCCEEDED, got.status

        await assert_eventually(succeeded, timeout=15)
        # A token signed with another secret's key is refused.
        stranger = TokenSigner(legacy_private_key("another-" + SECRET)).issue(
            subject="user:x", workspace_id="default", role=Role.OWNER
        )[0]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await defs.ListAutomations(
                dpb.ListAutomationsRequest(), metadata=(("authorization", f"Bearer {stranger}"),)
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for app in reversed(started):
            await app.stop()
    assert any("legacy single-secret" in r.getMessage() for r in caplog.records)
