"""Bearer tokens, roles, the central method -> permission table and the caller's identity."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from autom.core.errors import PermissionDenied, Unauthenticated

# EdDSA only (Ed25519): the definitions service signs, every other service only verifies.
ALGORITHM = "EdDSA"
ISSUER = "autom"
ANY_WORKSPACE = "*"
# Service tokens live minutes: services refresh them from definitions with their credential.
DEFAULT_SERVICE_TOKEN_TTL = 15 * 60
CREDENTIAL_PREFIX = "svc."
SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


class Role(StrEnum):
    """What a principal may do in a workspace."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    # Services calling each other (scheduler resync, executor reads and secret resolution).
    SERVICE = "service"
    # The deployment's operator: cross-workspace administration only, no workspace's content.
    # Minted by `autom-definitions admin-token` with the signing key, never by an RPC.
    ADMIN = "admin"
    # A service presenting its bootstrap credential: it may only obtain its service token.
    BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an RPC."""

    subject: str
    workspace_id: str
    role: Role
    token_id: str
    token: str = ""

    def can(self, permission: str) -> bool:
        """True when the role grants the permission."""
        return permission in ROLE_PERMISSIONS[self.role]

    def sees(self, workspace_id: str) -> bool:
        """True when resources of that workspace are visible (services see all)."""
        return self.workspace_id in (workspace_id, ANY_WORKSPACE)


_ALL = frozenset(
    {
        "automations:create",
        "automations:read",
        "automations:update",
        "automations:delete",
        "automations:execute",
        "drafts:create",
        "drafts:read",
        "drafts:approve",
        "drafts:reject",
        "tokens:manage",
        "members:manage",
        "secrets:manage",
        "mcp:manage",
        "workspaces:create",
        "admin:schedules",
        "admin:dead_letters",
        "identity:read",
        "audit:read",
        "triggers:resolve",
    }
)
ROLE_PERMISSIONS: Mapping[Role, frozenset[str]] = {
    Role.OWNER: _ALL,
    Role.EDITOR: frozenset(
        {
            "automations:create",
            "automations:read",
            "automations:update",
            "automations:execute",
            "drafts:create",
            "drafts:read",
            "drafts:approve",
            "drafts:reject",
            "identity:read",
        }
    ),
    Role.VIEWER: frozenset({"automations:read", "drafts:read", "identity:read"}),
    Role.SERVICE: frozenset(
        {
            "automations:read",
            "automations:execute",
            "secrets:resolve",
            "triggers:resolve",
            "identity:read",
        }
    ),
    Role.ADMIN: frozenset({"admin:deployment", "identity:read"}),
    Role.BOOTSTRAP: frozenset({"service_tokens:issue"}),
}

# Every RPC of every service, fully qualified. A method missing here is denied; None = public.
_D = "/autom.api.definitions.v1.DefinitionsService/"
_S = "/autom.api.scheduler.v1.SchedulerService/"
_E = "/autom.api.executor.v1.ExecutorService/"
_R = "/autom.api.drafter.v1.DrafterService/"
METHOD_PERMISSIONS: Mapping[str, str | None] = {
    _D + "ValidateDefinition": "automations:read",
    _D + "CreateAutomation": "automations:create",
    _D + "GetAutomation": "automations:read",
    _D + "ListAutomations": "automations:read",
    _D + "UpdateAutomation": "automations:update",
    _D + "ListAutomationVersions": "automations:read",
    _D + "PauseAutomation": "automations:update",
    _D + "ResumeAutomation": "automations:update",
    _D + "ArchiveAutomation": "automations:delete",
    _D + "DeleteAutomation": "automations:delete",
    _D + "GetDefinitionSchema": "automations:read",
    _D + "WhoAmI": "identity:read",
    _D + "CreateWorkspace": "workspaces:create",
    _D + "ListMembers": "members:manage",
    _D + "SetMember": "members:manage",
    _D + "RemoveMember": "members:manage",
    _D + "CreateApiToken": "tokens:manage",
    _D + "ListApiTokens": "tokens:manage",
    _D + "RevokeApiToken": "tokens:manage",
    _D + "SetSecret": "secrets:manage",
    _D + "ListSecrets": "secrets:manage",
    _D + "DeleteSecret": "secrets:manage",
    _D + "ResolveSecrets": "secrets:resolve",
    # The servicer further restricts it to the scheduler's service principal.
    _D + "StreamScheduleTriggers": "automations:read",
    _D + "IssueServiceToken": "service_tokens:issue",
    _D + "ListAuditEvents": "audit:read",
    _D + "RotateWebhook": "automations:update",
    # The servicer further restricts it to the executor's service principal.
    _D + "AuthenticateWebhook": "triggers:resolve",
    # The servicer further restricts it to the executor's service principal.
    _D + "MatchEventTriggers": "triggers:resolve",
    _D + "SetWorkspaceQuotas": "admin:deployment",
    # Members read their own workspace's; services and admins any.
    _D + "GetWorkspaceQuotas": "identity:read",
    _D + "RegisterMcpServer": "mcp:manage",
    # Editors need the servers' names to declare their tools; header values are never listed.
    _D + "ListMcpServers": "automations:read",
    _D + "DeleteMcpServer": "mcp:manage",
    # The servicer further restricts it to the executor's service principal.
    _D + "ResolveMcpServers": "secrets:resolve",
    _S + "ListSchedules": "automations:read",
    _S + "DescribeSchedule": "automations:read",
    _S + "PreviewSchedule": "automations:read",
    _S + "TriggerNow": "automations:execute",
    _S + "Backfill": "automations:execute",
    _S + "SyncAll": "admin:deployment",
    _S + "RemoveSchedule": "admin:schedules",
    _E + "StartRun": "automations:execute",
    _E + "GetRun": "automations:read",
    _E + "ListRuns": "automations:read",
    _E + "CancelRun": "automations:execute",
    _E + "RetryRun": "automations:execute",
    _E + "WatchRun": "automations:read",
    _E + "ListActionTypes": "automations:read",
    _E + "ListDeadLetters": "admin:dead_letters",
    # Public: a delivery proves itself with its trigger's signature or bearer secret.
    _E + "ReceiveWebhook": None,
    _E + "GetWorkspaceUsage": "identity:read",
    _R + "DraftAutomation": "drafts:create",
    _R + "RefineDraft": "drafts:create",
    _R + "GetDraft": "drafts:read",
    _R + "ListDrafts": "drafts:read",
    _R + "ApproveDraft": "drafts:approve",
    _R + "RejectDraft": "drafts:reject",
    "/grpc.health.v1.Health/Check": None,
    "/grpc.health.v1.Health/Watch": None,
    "/grpc.health.v1.Health/List": None,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": None,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": None,
}

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "autom_principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the auth interceptor)."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated caller")
    return principal


def set_current_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    """Bind the caller for the current task (the interceptor and tests use it)."""
    return _current.set(principal)


RANK: Mapping[Role, int] = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class RevocationList:
    """Token ids revoked before their expiry and members' current roles, fed by auth events."""

    def __init__(self) -> None:
        self._revoked: dict[str, float] = {}
        # (workspace, principal) -> (role now or None when removed, when it changed).
        self._members: dict[tuple[str, str], tuple[Role | None, float]] = {}

    def revoke(self, token_id: str, expires_at: float) -> None:
        """Remember a revoked token until it would have expired anyway."""
        self._revoked[token_id] = expires_at
        now = time.time()
        for tid in [t for t, exp in self._revoked.items() if exp < now]:
            del self._revoked[tid]

    def is_revoked(self, token_id: str) -> bool:
        """True when the token was revoked."""
        return token_id in self._revoked

    def set_member(
        self, workspace_id: str, principal: str, role: Role | None, changed_at: float
    ) -> None:
        """Record a member's role (None: removed) unless a later change is already known."""
        key = (workspace_id, principal)
        held = self._members.get(key)
        if held is None or held[1] <= changed_at:
            self._members[key] = (role, changed_at)

    def cap(self, workspace_id: str, principal: str, role: Role) -> Role:
        """The token's role limited to the member's current one; raise when removed."""
        held = self._members.get((workspace_id, principal))
        if held is None or role not in RANK:
            return role
        current = held[0]
        if current is None:
            raise Unauthenticated("token revoked: its principal is no longer a member")
        return current if RANK[current] < RANK[role] else role


def _b64decode(value: str) -> bytes:
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# AUTOM_AUTH_SECRET: the one shared secret of earlier releases. Still accepted so existing
# deployments and harnesses start, but every key is derived from it, so every process that
# holds it can mint tokens; the separated keys (AUTOM_AUTH_PRIVATE_KEY in definitions only)
# take precedence whenever they are set.
LEGACY_SECRET_WARNING = (
    "AUTOM_AUTH_SECRET is the legacy single-secret setup: every process holding it can mint "
    "tokens. Give definitions AUTOM_AUTH_PRIVATE_KEY and the others AUTOM_AUTH_PUBLIC_KEYS "
    "and their own AUTOM_SERVICE_CREDENTIAL instead (README, Security model)."
)
LEGACY_CREDENTIAL_SERVICES = ("scheduler", "executor")


def legacy_private_key(secret: str) -> str:
    """The signing key (AUTOM_AUTH_PRIVATE_KEY form) derived from a legacy AUTOM_AUTH_SECRET."""
    return _b64encode(hashlib.sha256(b"autom/legacy/ed25519\0" + secret.encode()).digest())


def legacy_credential(secret: str, service: str) -> str:
    """A service's bootstrap credential derived from a legacy AUTOM_AUTH_SECRET."""
    mac = hmac.new(secret.encode(), f"autom/legacy/credential/{service}".encode(), "sha256")
    return f"{CREDENTIAL_PREFIX}{service}.{mac.hexdigest()}"


def load_private_key(value: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from its base64url 32-byte seed (AUTOM_AUTH_PRIVATE_KEY)."""
    try:
        seed = _b64decode(value)
        if len(seed) != 32:
            raise ValueError
        return Ed25519PrivateKey.from_private_bytes(seed)
    except ValueError:
        raise ValueError(
            "the auth private key must be a base64url Ed25519 seed (32 bytes)"
        ) from None


def load_public_keys(value: str) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from comma-separated base64url raw keys (AUTOM_AUTH_PUBLIC_KEYS)."""
    keys = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            raw = _b64decode(item)
            if len(raw) != 32:
                raise ValueError
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError:
            raise ValueError("auth public keys must be base64url Ed25519 keys (32 bytes)") from None
    return keys


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The base64url text of a public key (of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return _b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def private_key_text(key: Ed25519PrivateKey) -> str:
    """The base64url text of a private key's seed."""
    return _b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def key_id(key: Ed25519PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint: the `kid` of the tokens it verifies."""
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": public_key_text(key)}, separators=(",", ":")
    )
    return _b64encode(hashlib.sha256(jwk.encode()).digest())


class ServiceCredentials:
    """The bootstrap credentials services present to obtain their tokens, kept as hashes.

    A credential reads `svc.<service>.<random>`; the definitions service holds only
    `<service>:<sha256 hex of the credential>` entries (AUTOM_SERVICE_CREDENTIALS), several
    per service while one is being replaced.
    """

    def __init__(self, entries: str = "") -> None:
        self._hashes: dict[str, set[str]] = {}
        for entry in entries.split(","):
            if not entry.strip():
                continue
            name, sep, digest = entry.strip().partition(":")
            if (
                not sep
                or not SERVICE_NAME.fullmatch(name)
                or not re.fullmatch(r"[0-9a-f]{64}", digest)
            ):
                raise ValueError(
                    "AUTOM_SERVICE_CREDENTIALS must be comma-separated <service>:<sha256 hex>"
                )
            self._hashes.setdefault(name, set()).add(digest)

    @staticmethod
    def generate(service: str) -> tuple[str, str]:
        """A new credential for `service` and the entry that makes definitions accept it."""
        if not SERVICE_NAME.fullmatch(service):
            raise ValueError(f"service name must match {SERVICE_NAME.pattern}")
        credential = f"{CREDENTIAL_PREFIX}{service}.{secrets.token_urlsafe(32)}"
        return credential, ServiceCredentials.entry(credential)

    @staticmethod
    def entry(credential: str) -> str:
        """`<service>:<sha256>` of a credential (what definitions is configured with)."""
        service = credential.removeprefix(CREDENTIAL_PREFIX).partition(".")[0]
        return f"{service}:{hashlib.sha256(credential.encode()).hexdigest()}"

    def principal(self, credential: str) -> Principal | None:
        """The bootstrap principal of a valid credential, None otherwise."""
        service, dot, secret = credential.removeprefix(CREDENTIAL_PREFIX).partition(".")
        if not credential.startswith(CREDENTIAL_PREFIX) or not dot or len(secret) < 32:
            return None
        digest = hashlib.sha256(credential.encode()).hexdigest()
        known = self._hashes.get(service, set())
        # Compare against every entry so timing tells nothing about which one matched.
        if not any([hmac.compare_digest(digest, h) for h in known]):
            return None
        return Principal(
            subject=f"service:{service}", workspace_id="", role=Role.BOOTSTRAP, token_id=""
        )


VERIFIED_CACHE_SIZE = 1024


class TokenVerifier:
    """Verifies EdDSA (Ed25519) bearer tokens with public keys only: it can mint nothing.

    Tokens name their key (`kid`, the key's thumbprint), so during a signing key rotation
    the old and the new public key both verify. Only EdDSA is accepted: an HS256 token
    "signed" with a public key as HMAC secret (algorithm confusion) is refused.
    """

    def __init__(
        self,
        public_keys: Sequence[Ed25519PublicKey],
        revocations: RevocationList | None = None,
        *,
        credentials: ServiceCredentials | None = None,
    ) -> None:
        if not public_keys:
            raise ValueError("at least one auth public key is required (AUTOM_AUTH_PUBLIC_KEYS)")
        self._keys = {key_id(k): k for k in public_keys}
        self._credentials = credentials
        self.revocations = revocations or RevocationList()
        # Claims of tokens whose signature checked out: a signature never changes, while
        # expiry, revocation and role are checked on every call.
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def key_ids(self) -> list[str]:
        """The kids this verifier accepts."""
        return list(self._keys)

    def _claims(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise jwt.InvalidAlgorithmError("only EdDSA tokens are accepted")
        key = self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise jwt.InvalidKeyError("unknown signing key")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            # `iat` is not checked against this host's clock: a token fresh from definitions
            # on a host whose clock runs a little ahead would be "not yet valid" here.
            options={"require": ["exp", "iat", "sub", "jti", "iss"], "verify_iat": False},
        )
        return claims

    def _cached_claims(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None and claims["exp"] > time.time():
            self._verified.move_to_end(token)
            return claims
        self._verified.pop(token, None)
        claims = self._claims(token)
        self._verified[token] = claims
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def verify(self, token: str) -> Principal:
        """Decode and check a token; raise Unauthenticated on anything wrong."""
        if token.startswith(CREDENTIAL_PREFIX):
            principal = self._credentials.principal(token) if self._credentials else None
            if principal is None:
                raise Unauthenticated("invalid service credential")
            return principal
        try:
            claims = self._cached_claims(token)
            role = Role(claims["role"])
            workspace_id = str(claims["ws"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise Unauthenticated("invalid token") from exc
        if role == Role.BOOTSTRAP:
            raise Unauthenticated("invalid token")
        if self.revocations.is_revoked(claims["jti"]):
            raise Unauthenticated("token revoked")
        # A token never carries more than its member's current role (demoted, removed).
        role = self.revocations.cap(workspace_id, claims["sub"], role)
        return Principal(
            subject=claims["sub"],
            workspace_id=workspace_id,
            role=role,
            token_id=claims["jti"],
            token=token,
        )


class TokenSigner(TokenVerifier):
    """Issues EdDSA tokens with the private key (the definitions service only) and verifies.

    It verifies with its own public key plus `public_keys` (older keys during a rotation).
    """

    def __init__(
        self,
        private_key: Ed25519PrivateKey | str,
        revocations: RevocationList | None = None,
        *,
        public_keys: Sequence[Ed25519PublicKey] = (),
        credentials: ServiceCredentials | None = None,
    ) -> None:
        if isinstance(private_key, str):
            private_key = load_private_key(private_key)
        self._private = private_key
        self._kid = key_id(private_key.public_key())
        super().__init__(
            [private_key.public_key(), *public_keys], revocations, credentials=credentials
        )

    @property
    def kid(self) -> str:
        """The kid of the tokens it issues now."""
        return self._kid

    def issue(
        self,
        *,
        subject: str,
        workspace_id: str,
        role: Role,
        ttl_seconds: int = 30 * 24 * 3600,
        token_id: str | None = None,
    ) -> tuple[str, str, int]:
        """Return (token, token_id, expiry epoch seconds)."""
        if role == Role.BOOTSTRAP:
            raise ValueError("bootstrap principals hold credentials, not tokens")
        now = int(time.time())
        jti = token_id or str(uuid.uuid4())
        exp = now + ttl_seconds
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "ws": workspace_id,
            "role": role.value,
            "jti": jti,
            "iat": now,
            "exp": exp,
        }
        token = jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self._kid})
        return token, jti, exp

    def admin_token(self, name: str, ttl_seconds: int = 3600) -> str:
        """A deployment-admin token (short-lived: it is not revocable through the API)."""
        token, _, _ = self.issue(
            subject=f"admin:{name}",
            workspace_id=ANY_WORKSPACE,
            role=Role.ADMIN,
            ttl_seconds=ttl_seconds,
        )
        return token

    def service_token(
        self, service: str, ttl_seconds: int = DEFAULT_SERVICE_TOKEN_TTL
    ) -> tuple[str, int]:
        """A short-lived token for one service to call the others across workspaces.

        Returns (token, expiry epoch seconds); services get it through IssueServiceToken.
        """
        token, _, exp = self.issue(
            subject=f"service:{service}",
            workspace_id=ANY_WORKSPACE,
            role=Role.SERVICE,
            ttl_seconds=ttl_seconds,
        )
        return token, exp


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def authorize(
    method: str, metadata: Mapping[str, str], verifier: TokenVerifier
) -> Principal | None:
    """Authenticate and authorize one call; None for public methods. Default deny."""
    if method in METHOD_PERMISSIONS and METHOD_PERMISSIONS[method] is None:
        return None
    # Authentication first, for listed and unlisted methods alike: nobody anonymous learns
    # which methods exist, and an RPC missing from the table still demands a token.
    header = metadata.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token: send `authorization: Bearer <token>`")
    principal = verifier.verify(token.strip())
    permission = METHOD_PERMISSIONS.get(method)
    if permission is None:
        raise PermissionDenied(f"method {method} is not allowed")
    if not principal.can(permission):
        raise PermissionDenied(f"role {principal.role.value} lacks permission {permission}")
    return principal
