"""Tokens, the permission table and the error -> status mapping."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2

from autom.core.auth import Role, TokenSigner, authorize, generate_private_key, private_key_text
from autom.core.errors import (
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
    Violation,
    to_status_proto,
)

SECRET = private_key_text(generate_private_key())
CREATE = "/autom.api.definitions.v1.DefinitionsService/CreateAutomation"
HEALTH = "/grpc.health.v1.Health/Check"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_roles_map_to_permissions() -> None:
    signer = TokenSigner(SECRET)
    editor, _, _ = signer.issue(subject="user:e", workspace_id="w", role=Role.EDITOR)
    viewer, _, _ = signer.issue(subject="user:v", workspace_id="w", role=Role.VIEWER)
    assert authorize(CREATE, bearer(editor), signer).subject == "user:e"  # type: ignore[union-attr]
    with pytest.raises(PermissionDenied):
        authorize(CREATE, bearer(viewer), signer)
    assert authorize(HEALTH, {}, signer) is None


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic abc", "Bearer not-a-jwt"],
)
def test_missing_or_malformed_credentials_are_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated):
        authorize(CREATE, {"authorization": header}, TokenSigner(SECRET))


def test_expired_foreign_and_none_algorithm_tokens_are_refused() -> None:
    signer = TokenSigner(SECRET)
    claims = {"iss": "autom", "sub": "u", "ws": "w", "role": "owner", "jti": "j"}
    headers = {"kid": signer.kid}
    key = generate_private_key()
    expired = jwt.encode({**claims, "iat": 0, "exp": 1}, signer._private, "EdDSA", headers)
    foreign = jwt.encode(
        {**claims, "iat": int(time.time()), "exp": int(time.time()) + 60}, key, "EdDSA", headers
    )
    unsigned = jwt.encode(
        {**claims, "iat": int(time.time()), "exp": int(time.time()) + 60}, None, "none"
    )
    for token in (expired, foreign, unsigned, expired.replace(".", "x", 1)):
        with pytest.raises(Unauthenticated):
            signer.verify(token)


def test_revoked_token_is_refused() -> None:
    signer = TokenSigner(SECRET)
    token, jti, exp = signer.issue(subject="u", workspace_id="w", role=Role.OWNER)
    signer.revocations.revoke(jti, exp)
    with pytest.raises(Unauthenticated):
        signer.verify(token)


def test_validation_error_carries_bad_request_field_violations() -> None:
    status = to_status_proto(ValidationFailed([Violation("plan[1].when", "does not parse")]))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    infos = {d.type_url.rsplit("/", 1)[-1] for d in status.details}
    assert infos == {"google.rpc.ErrorInfo", "google.rpc.BadRequest"}
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("plan[1].when", "does not parse")
    ]


def test_not_found_carries_resource_info() -> None:
    status = to_status_proto(NotFound("automation", "a-1"))
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    info = error_details_pb2.ResourceInfo()
    next(d for d in status.details if d.Is(info.DESCRIPTOR)).Unpack(info)
    assert (info.resource_type, info.resource_name) == ("automation", "a-1")


def test_a_token_issued_by_a_clock_slightly_ahead_is_accepted() -> None:
    signer = TokenSigner(SECRET)
    now = int(time.time())
    claims = {"iss": "autom", "sub": "u", "ws": "w", "role": "owner", "jti": "j"}
    ahead = jwt.encode(
        {**claims, "iat": now + 2, "exp": now + 60}, signer._private, "EdDSA", {"kid": signer.kid}
    )
    assert signer.verify(ahead).subject == "u"


def test_a_verified_token_is_still_refused_once_expired_or_revoked() -> None:
    signer = TokenSigner(SECRET)
    short, _, _ = signer.issue(subject="user:a", workspace_id="w", role=Role.OWNER, ttl_seconds=1)
    assert signer.verify(short).subject == "user:a"
    deadline = time.monotonic() + 10
    while True:
        try:
            signer.verify(short)
        except Unauthenticated as exc:
            assert "expired" in exc.message
            break
        assert time.monotonic() < deadline, "an expired token was still accepted"
        time.sleep(0.05)

    token, jti, exp = signer.issue(subject="user:b", workspace_id="w", role=Role.OWNER)
    assert signer.verify(token).role == Role.OWNER
    signer.revocations.revoke(jti, exp)
    with pytest.raises(Unauthenticated, match="revoked"):
        signer.verify(token)
