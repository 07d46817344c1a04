"""Bearer tokens, roles, the central method -> permission table and the caller's identity."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import jwt

from autom.core.errors import PermissionDenied, Unauthenticated

ALGORITHM = "HS256"
ISSUER = "autom"
ANY_WORKSPACE = "*"


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
        "workspaces:create",
        "admin:schedules",
        "admin:dead_letters",
        "identity:read",
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
    _D + "RotateWebhook": "automations:update",
    # The servicer further restricts it to the executor's service principal.
    _D + "AuthenticateWebhook": "triggers:resolve",
    # The servicer further restricts it to the executor's service principal.
    _D + "MatchEventTriggers": "triggers:resolve",
    _D + "SetWorkspaceQuotas": "admin:deployment",
    # Members read their own workspace's; services and admins any.
    _D + "GetWorkspaceQuotas": "identity:read",
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


class TokenSigner:
    """Issues and verifies HS256 bearer tokens with the deployment secret."""

    def __init__(self, secret: str, revocations: RevocationList | None = None) -> None:
        if len(secret) < 32:
            raise ValueError("auth secret must be at least 32 characters (HS256 key length)")
        self._secret = secret
        self.revocations = revocations or RevocationList()

    def derive_key(self, purpose: str) -> bytes:
        """A key for `purpose` derived from the secret (never the signing key itself)."""
        return hmac.new(self._secret.encode(), purpose.encode(), hashlib.sha256).digest()

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
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), jti, exp

    def verify(self, token: str) -> Principal:
        """Decode and check a token; raise Unauthenticated on anything wrong."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "iss"]},
            )
            role = Role(claims["role"])
            workspace_id = str(claims["ws"])
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise Unauthenticated("invalid token") from exc
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

    def admin_token(self, name: str, ttl_seconds: int = 3600) -> str:
        """A deployment-admin token (short-lived: it is not revocable through the API)."""
        token, _, _ = self.issue(
            subject=f"admin:{name}",
            workspace_id=ANY_WORKSPACE,
            role=Role.ADMIN,
            ttl_seconds=ttl_seconds,
        )
        return token

    def service_token(self, service: str, ttl_seconds: int = 365 * 24 * 3600) -> str:
        """A token for one service to call the others across workspaces."""
        token, _, _ = self.issue(
            subject=f"service:{service}",
            workspace_id=ANY_WORKSPACE,
            role=Role.SERVICE,
            ttl_seconds=ttl_seconds,
        )
        return token


def authorize(method: str, metadata: Mapping[str, str], signer: TokenSigner) -> Principal | None:
    """Authenticate and authorize one call; None for public methods. Default deny."""
    if method in METHOD_PERMISSIONS and METHOD_PERMISSIONS[method] is None:
        return None
    # Authentication first, for listed and unlisted methods alike: nobody anonymous learns
    # which methods exist, and an RPC missing from the table still demands a token.
    header = metadata.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token: send `authorization: Bearer <token>`")
    principal = signer.verify(token.strip())
    permission = METHOD_PERMISSIONS.get(method)
    if permission is None:
        raise PermissionDenied(f"method {method} is not allowed")
    if not principal.can(permission):
        raise PermissionDenied(f"role {principal.role.value} lacks permission {permission}")
    return principal
