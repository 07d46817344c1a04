"""Workspaces, members, tokens (with revocation) and write-only secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp, channel
from autom.definitions.app import build_app
from autom.definitions.convert import definition_to_proto
from autom.definitions.settings import DefinitionsSettings
from autom.devstack.testing import service_keys

TokenFor = Callable[..., str]
KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()


@pytest.fixture
async def app_with_secrets(
    database_url: str, nats_url: str, signing_key: str
) -> AsyncIterator[GrpcApp]:
    settings = DefinitionsSettings(
        database_url=database_url,
        nats_url=nats_url,
        **service_keys("definitions", signing_key),
        grpc_port=0,
        secrets_key=KEY_OLD,
    )
    app = await build_app(settings)
    await app.start()
    yield app
    await app.stop()


def api(app: GrpcApp, token: str | None) -> pb_grpc.DefinitionsServiceStub:
    return pb_grpc.DefinitionsServiceStub(channel(app.address, token))


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_owner_issues_and_revokes_tokens_editor_cannot(
    definitions_app: GrpcApp, token_for: TokenFor
) -> None:
    owner = api(definitions_app, token_for(Role.OWNER))
    editor = api(definitions_app, token_for(Role.EDITOR))
    created = await owner.CreateApiToken(
        pb.CreateApiTokenRequest(principal="user:bob", role=definitions_pb2.ROLE_VIEWER, name="ci")
    )
    bob = api(definitions_app, created.secret)
    who = await bob.WhoAmI(pb.WhoAmIRequest())
    assert (who.principal, who.role) == ("user:bob", definitions_pb2.ROLE_VIEWER)
    assert created.token.id in {
        t.id for t in (await owner.ListApiTokens(pb.ListApiTokensRequest())).tokens
    }

    assert (
        await code_of(editor.ListApiTokens(pb.ListApiTokensRequest()))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await code_of(editor.CreateApiToken(pb.CreateApiTokenRequest(principal="user:eve")))
        == grpc.StatusCode.PERMISSION_DENIED
    )

    await owner.RevokeApiToken(pb.RevokeApiTokenRequest(token_id=created.token.id))
    assert await code_of(bob.WhoAmI(pb.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED


async def test_revocation_reaches_other_services_over_nats(
    definitions_app: GrpcApp, token_for: TokenFor, nats_url: str, signing_key: str
) -> None:
    from autom.core import bus
    from autom.core.revocations import revocation_feed
    from autom.devstack.eventually import assert_eventually

    owner = api(definitions_app, token_for(Role.OWNER))
    created = await owner.CreateApiToken(pb.CreateApiTokenRequest(principal="user:carol"))
    await owner.RevokeApiToken(pb.RevokeApiTokenRequest(token_id=created.token.id))

    other = TokenSigner(signing_key)  # another service's view, fed only by the stream
    nc = await bus.connect(nats_url, name="other-service")
    feed = revocation_feed(nc.jetstream(), other.revocations)
    await feed.start()
    try:

        async def revoked() -> None:
            assert other.revocations.is_revoked(created.token.id)

        await assert_eventually(revoked, timeout=10)
    finally:
        await nc.close()


async def test_members_and_workspaces(definitions_app: GrpcApp, token_for: TokenFor) -> None:
    owner = api(definitions_app, token_for(Role.OWNER, subject="user:alice"))
    await owner.SetMember(
        pb.SetMemberRequest(principal="user:dan", role=definitions_pb2.ROLE_EDITOR)
    )
    members = {
        m.principal: m.role for m in (await owner.ListMembers(pb.ListMembersRequest())).members
    }
    assert members["user:dan"] == definitions_pb2.ROLE_EDITOR
    assert (
        await code_of(owner.SetMember(pb.SetMemberRequest(principal="nobody", role=1)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    made = await owner.CreateWorkspace(pb.CreateWorkspaceRequest(name="team-b"))
    in_b = api(definitions_app, made.owner_token)
    assert (await in_b.WhoAmI(pb.WhoAmIRequest())).workspace_id == made.workspace.id


async def test_secrets_are_write_only_and_resolvable_only_by_the_executor(
    app_with_secrets: GrpcApp, token_for: TokenFor, signer: TokenSigner
) -> None:
    owner = api(app_with_secrets, token_for(Role.OWNER))
    await owner.SetSecret(
        pb.SetSecretRequest(name="WEBHOOK_URL", value="https://hooks.test/s3cr3t")
    )
    listed = await owner.ListSecrets(pb.ListSecretsRequest())
    assert [s.name for s in listed.secrets] == ["WEBHOOK_URL"]
    assert "s3cr3t" not in str(listed)

    assert (
        await code_of(
            owner.ResolveSecrets(
                pb.ResolveSecretsRequest(workspace_id="default", names=["WEBHOOK_URL"])
            )
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    scheduler = api(app_with_secrets, signer.service_token("scheduler")[0])
    assert (
        await code_of(
            scheduler.ResolveSecrets(pb.ResolveSecretsRequest(workspace_id="default", names=["X"]))
        )
        == grpc.StatusCode.PERMISSION_DENIED
    )
    executor = api(app_with_secrets, signer.service_token("executor")[0])
    resolved = await executor.ResolveSecrets(
        pb.ResolveSecretsRequest(workspace_id="default", names=["WEBHOOK_URL", "MISSING"])
    )
    assert dict(resolved.values) == {"WEBHOOK_URL": "https://hooks.test/s3cr3t"}
    assert list(resolved.missing) == ["MISSING"]
    assert (
        await code_of(owner.SetSecret(pb.SetSecretRequest(name="lower", value="x")))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_secret_keys_rotate(
    database_url: str, nats_url: str, signing_key: str, token_for: TokenFor, signer: TokenSigner
) -> None:
    async def start(keys: str) -> GrpcApp:
        app = await build_app(
            DefinitionsSettings(
                database_url=database_url,
                nats_url=nats_url,
                **service_keys("definitions", signing_key),
                grpc_port=0,
                secrets_key=keys,
            )
        )
        await app.start()
        return app

    first = await start(KEY_OLD)
    owner = api(first, token_for(Role.OWNER))
    await owner.SetSecret(pb.SetSecretRequest(name="TOKEN", value="abc"))
    await first.stop()
    rotated = await start(f"{KEY_NEW},{KEY_OLD}")
    try:
        executor = api(rotated, signer.service_token("executor")[0])
        got = await executor.ResolveSecrets(
            pb.ResolveSecretsRequest(workspace_id="default", names=["TOKEN"])
        )
        assert dict(got.values) == {"TOKEN": "abc"}
    finally:
        await rotated.stop()


async def _rotate(database_url: str, signing_key: str, keys: str) -> tuple[int, str]:
    """`autom-definitions rotate-secrets`, as an operator runs it."""
    import asyncio
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.definitions",
        "rotate-secrets",
        env={
            **os.environ,
            "AUTOM_DATABASE_URL": database_url,
            "AUTOM_AUTH_PRIVATE_KEY": signing_key,
            "AUTOM_SECRETS_KEY": keys,
            "AUTOM_LOG_LEVEL": "WARNING",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_rotate_secrets_reencrypts_so_the_old_key_can_go(
    database_url: str, nats_url: str, signing_key: str, token_for: TokenFor, signer: TokenSigner
) -> None:
    async def start(keys: str) -> GrpcApp:
        app = await build_app(
            DefinitionsSettings(
                database_url=database_url,
                nats_url=nats_url,
                **service_keys("definitions", signing_key),
                grpc_port=0,
                secrets_key=keys,
            )
        )
        await app.start()
        return app

    first = await start(KEY_OLD)
    owner = api(first, token_for(Role.OWNER))
    await owner.SetSecret(pb.SetSecretRequest(name="TOKEN", value="abc"))
    await first.stop()

    # Without the old key nothing can be re-encrypted, and nothing is changed.
    code, out = await _rotate(database_url, signing_key, Fernet.generate_key().decode())
    assert code != 0 and "TOKEN" in out and "abc" not in out
    code, out = await _rotate(database_url, signing_key, f"{KEY_NEW},{KEY_OLD}")
    assert code == 0, out
    assert "re-encrypted 1 secrets" in out

    only_new = await start(KEY_NEW)
    try:
        executor = api(only_new, signer.service_token("executor")[0])
        got = await executor.ResolveSecrets(
            pb.ResolveSecretsRequest(workspace_id="default", names=["TOKEN"])
        )
        assert dict(got.values) == {"TOKEN": "abc"}
    finally:
        await only_new.stop()


async def test_secrets_without_a_key_fail_precondition(
    definitions_app: GrpcApp, token_for: TokenFor
) -> None:
    owner = api(definitions_app, token_for(Role.OWNER))
    assert (
        await code_of(owner.SetSecret(pb.SetSecretRequest(name="A", value="b")))
        == grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_demoted_and_removed_members_tokens_lose_their_rights_at_once(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    owner = api(definitions_app, token_for(Role.OWNER, subject="user:olga"))
    created = await owner.CreateApiToken(
        pb.CreateApiTokenRequest(principal="user:ed", role=definitions_pb2.ROLE_EDITOR, name="ci")
    )
    ed = api(definitions_app, created.secret)
    # A token minted outside the API (as the dev token is) obeys the membership too.
    ed_minted = api(definitions_app, token_for(Role.OWNER, subject="user:ed"))
    definition = definition_to_proto(digest)
    await ed.CreateAutomation(pb.CreateAutomationRequest(definition=definition))

    await owner.SetMember(
        pb.SetMemberRequest(principal="user:ed", role=definitions_pb2.ROLE_VIEWER)
    )
    digest["name"] = "second"
    definition = definition_to_proto(digest)
    for stub in (ed, ed_minted):
        assert (
            await code_of(stub.CreateAutomation(pb.CreateAutomationRequest(definition=definition)))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        who = await stub.WhoAmI(pb.WhoAmIRequest())
        assert who.role == definitions_pb2.ROLE_VIEWER
    listed = {t.id: t for t in (await owner.ListApiTokens(pb.ListApiTokensRequest())).tokens}
    assert listed[created.token.id].role == definitions_pb2.ROLE_VIEWER

    await owner.RemoveMember(pb.RemoveMemberRequest(principal="user:ed"))
    for stub in (ed, ed_minted):
        assert await code_of(stub.WhoAmI(pb.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED
    active = (await owner.ListApiTokens(pb.ListApiTokensRequest())).tokens
    assert created.token.id not in {t.id for t in active}
    every = (await owner.ListApiTokens(pb.ListApiTokensRequest(include_inactive=True))).tokens
    (revoked,) = [t for t in every if t.id == created.token.id]
    assert revoked.HasField("revoke_time")

    # Added again, the member gets a fresh token; the old one stays revoked.
    again = await owner.CreateApiToken(
        pb.CreateApiTokenRequest(principal="user:ed", role=definitions_pb2.ROLE_VIEWER)
    )
    ed_again = api(definitions_app, again.secret)
    who = await ed_again.WhoAmI(pb.WhoAmIRequest())
    assert who.role == definitions_pb2.ROLE_VIEWER
    assert await code_of(ed.WhoAmI(pb.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED
