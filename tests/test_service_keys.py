"""Asymmetric tokens: only definitions signs, services verify, service tokens are short-lived
and refreshed, and the signing key rotates without breaking tokens already handed out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as spb_grpc
from autom.core.auth import (
    TokenSigner,
    TokenVerifier,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_keys,
)
from autom.core.grpcserver import channel
from autom.core.servicetokens import ServiceTokens
from autom.devstack.eventually import assert_eventually
from autom.devstack.testing import TEST_CREDENTIALS, service_env, service_keys
from autom.scheduler.settings import SchedulerSettings

from .conftest import StartApp


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """An HS256 JWT built by hand (PyJWT itself refuses asymmetric keys as HMAC secrets)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def test_a_service_without_the_private_key_cannot_mint_an_accepted_token(
    start_app: StartApp, signing_key: str
) -> None:
    definitions = await start_app("definitions")
    scheduler = await start_app(
        "scheduler", definitions_addr=definitions.address, scheduler_resync_on_start=False
    )
    # A service's settings hold no private key, and what verifies its calls cannot sign.
    assert "auth_private_key" not in SchedulerSettings.model_fields
    assert type(scheduler.verifier) is TokenVerifier
    assert not hasattr(scheduler.verifier, "issue")

    public = load_private_key(signing_key).public_key()
    kid = key_id(public)
    now = int(time.time())
    claims = {
        "iss": "autom",
        "sub": "user:mallory",
        "ws": "default",
        "role": "owner",
        "jti": "forged",
        "iat": now,
        "exp": now + 600,
    }
    public_text = service_keys("scheduler", signing_key)["auth_public_keys"]
    forged = {
        # A key of the attacker's own, claiming to be the deployment's.
        "foreign key": jwt.encode(claims, generate_private_key(), "EdDSA", {"kid": kid}),
        # Algorithm confusion: the public key (as configured, raw, PEM) as an HMAC secret.
        "hs256 text": _hs256(claims, public_text.encode(), kid),
        "hs256 raw": _hs256(claims, public.public_bytes(Encoding.Raw, PublicFormat.Raw), kid),
        "hs256 pem": _hs256(
            claims, public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo), kid
        ),
        "none": jwt.encode(claims, None, "none", {"kid": kid}),
        "no kid": jwt.encode(claims, load_private_key(signing_key), "EdDSA"),
    }
    for name, token in forged.items():
        defs = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, token))
        sched = spb_grpc.SchedulerServiceStub(channel(scheduler.address, token))
        assert await _code(defs.WhoAmI(dpb.WhoAmIRequest())) == (grpc.StatusCode.UNAUTHENTICATED), (
            name
        )
        assert await _code(sched.ListSchedules(spb.ListSchedulesRequest())) == (
            grpc.StatusCode.UNAUTHENTICATED
        ), name

    # The same claims signed by the definitions service's key are accepted.
    genuine = jwt.encode(claims, load_private_key(signing_key), "EdDSA", {"kid": kid})
    sched = spb_grpc.SchedulerServiceStub(channel(scheduler.address, genuine))
    assert await _code(sched.ListSchedules(spb.ListSchedulesRequest())) == grpc.StatusCode.OK


async def test_an_expired_service_token_is_refreshed_from_definitions(
    start_app: StartApp, owner_token: str
) -> None:
    definitions = await start_app("definitions", service_token_ttl_seconds=2)
    tokens = ServiceTokens(definitions.address, TEST_CREDENTIALS["executor"])
    chan = channel(definitions.address, tokens)
    try:
        stub = dpb_grpc.DefinitionsServiceStub(chan)
        who = await stub.WhoAmI(dpb.WhoAmIRequest())
        assert who.principal == "service:executor"
        first = await tokens.token()
        claims = jwt.decode(first, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 2  # short-lived, not a year

        async def expired() -> None:
            assert time.time() > claims["exp"]

        await assert_eventually(expired, timeout=10)
        # The old token is refused; the channel obtained a new one and goes on working.
        old = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, first))
        assert await _code(old.WhoAmI(dpb.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED
        assert (await stub.WhoAmI(dpb.WhoAmIRequest())).principal == "service:executor"
        assert tokens.issued >= 2 and await tokens.token() != first
    finally:
        await chan.close()
        await tokens.close()

    # Only a listed credential obtains a service token; tokens cannot obtain more tokens.
    service_token, _ = TokenSigner(service_keys("definitions")["auth_private_key"]).service_token(
        "executor"
    )
    for credential, code in (
        (TEST_CREDENTIALS["executor"][:-1] + "x", grpc.StatusCode.UNAUTHENTICATED),
        ("svc.drafter." + "d" * 43, grpc.StatusCode.UNAUTHENTICATED),
        (service_token, grpc.StatusCode.PERMISSION_DENIED),
        (owner_token, grpc.StatusCode.PERMISSION_DENIED),
    ):
        stub = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, credential))
        assert await _code(stub.IssueServiceToken(dpb.IssueServiceTokenRequest())) == code
    # A credential is good for nothing but obtaining the service token.
    bootstrap = dpb_grpc.DefinitionsServiceStub(
        channel(definitions.address, TEST_CREDENTIALS["executor"])
    )
    assert (
        await _code(bootstrap.ListAutomations(dpb.ListAutomationsRequest()))
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def _rotate_signing_key(signing_key: str) -> dict[str, str]:
    """`autom-definitions rotate-signing-key`, as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.definitions",
        "rotate-signing-key",
        env={**os.environ, **service_env("definitions", signing_key), "AUTOM_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0
    lines = [line for line in out.decode().splitlines() if not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_kid(
    start_app: StartApp, signing_key: str, owner_token: str
) -> None:
    old_kid = key_id(load_private_key(signing_key).public_key())
    rotated = await _rotate_signing_key(signing_key)
    new_key = rotated["AUTOM_AUTH_PRIVATE_KEY"]
    both = rotated["AUTOM_AUTH_PUBLIC_KEYS"]
    new_kid = key_id(load_private_key(new_key).public_key())
    assert new_kid != old_kid
    assert [key_id(k) for k in load_public_keys(both)] == [new_kid, old_kid]

    # Steps 1 and 2: every service verifies with both keys, definitions signs with the new one.
    definitions = await start_app("definitions", auth_private_key=new_key, auth_public_keys=both)
    scheduler = await start_app(
        "scheduler",
        definitions_addr=definitions.address,
        scheduler_resync_on_start=False,
        auth_public_keys=both,
    )
    old_defs = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    old_sched = spb_grpc.SchedulerServiceStub(channel(scheduler.address, owner_token))
    assert (await old_defs.WhoAmI(dpb.WhoAmIRequest())).principal == "user:owner"
    assert await _code(old_sched.ListSchedules(spb.ListSchedulesRequest())) == grpc.StatusCode.OK

    created = await old_defs.CreateApiToken(
        dpb.CreateApiTokenRequest(principal="user:owner", role=definitions_pb2.ROLE_VIEWER)
    )
    assert jwt.get_unverified_header(created.secret)["kid"] == new_kid
    new_sched = spb_grpc.SchedulerServiceStub(channel(scheduler.address, created.secret))
    assert await _code(new_sched.ListSchedules(spb.ListSchedulesRequest())) == grpc.StatusCode.OK
    # Services obtain their tokens from definitions, so theirs carry the new kid too.
    tokens = ServiceTokens(definitions.address, TEST_CREDENTIALS["scheduler"])
    try:
        assert jwt.get_unverified_header(await tokens.token())["kid"] == new_kid
    finally:
        await tokens.close()

    # Step 3, once the old tokens expired: the old key goes, and what it signed with it.
    only_new = await start_app(
        "scheduler",
        scheduler_resync_on_start=False,
        auth_public_keys=both.split(",")[0],
    )
    old_after = spb_grpc.SchedulerServiceStub(channel(only_new.address, owner_token))
    assert (
        await _code(old_after.ListSchedules(spb.ListSchedulesRequest()))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    new_after = spb_grpc.SchedulerServiceStub(channel(only_new.address, created.secret))
    assert await _code(new_after.ListSchedules(spb.ListSchedulesRequest())) == grpc.StatusCode.OK


@pytest.mark.parametrize("service", ["scheduler", "executor"])
def test_a_calling_service_refuses_to_start_without_its_own_credential(service: str) -> None:
    import importlib

    from autom.core.runtime import service_tokens

    settings_module = importlib.import_module(f"autom.{service}.settings")
    cls = next(getattr(settings_module, n) for n in dir(settings_module) if n.endswith("Settings"))
    keys = service_keys(service)
    bare = cls(auth_public_keys=keys["auth_public_keys"])
    with pytest.raises(ValueError, match="AUTOM_SERVICE_CREDENTIAL"):
        service_tokens(bare, service)
    other = "executor" if service == "scheduler" else "scheduler"
    wrong = cls(
        auth_public_keys=keys["auth_public_keys"], service_credential=TEST_CREDENTIALS[other]
    )
    with pytest.raises(ValueError, match=f"not a credential of the {service}"):
        service_tokens(wrong, service)


async def test_a_service_keeps_its_valid_token_while_definitions_is_down(
    start_app: StartApp,
) -> None:
    definitions = await start_app("definitions", service_token_ttl_seconds=600)
    now = [time.time()]
    tokens = ServiceTokens(
        definitions.address, TEST_CREDENTIALS["scheduler"], timeout_s=2, clock=lambda: now[0]
    )
    try:
        first = await tokens.token()
        await definitions.stop()
        now[0] += 400  # past half-life: a refresh is due, and fails
        assert await tokens.token() == first
        now[0] += 300  # expired: nothing valid is left to call with
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await tokens.token()
        assert err.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    finally:
        await tokens.close()
