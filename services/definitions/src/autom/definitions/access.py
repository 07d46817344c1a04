"""Workspaces, members, API tokens and secrets: who may touch what, and with which keys."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.core.audit import Change
from autom.core.auth import ANY_WORKSPACE, RANK, Principal, Role, TokenSigner
from autom.core.bus import OutboxRelay, outbox_row
from autom.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    Violation,
)
from autom.core.protoconv import to_timestamp
from autom.core.revocations import MEMBER_SUBJECT
from autom.core.revocations import SUBJECT as REVOKED_SUBJECT
from autom.definitions import audit, db

SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,127}$")
WORKSPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PRINCIPAL = re.compile(r"^[a-z]+:[A-Za-z0-9@._-]{1,200}$")
MAX_SECRET_BYTES = 64 * 1024
DEFAULT_TTL = 30 * 24 * 3600
MAX_TTL = 366 * 24 * 3600
SECRET_RESOLVER = "service:executor"


def _now() -> datetime:
    return datetime.now(UTC)


def build_cipher(keys: str | None) -> MultiFernet | None:
    """MultiFernet from comma-separated keys (newest first); None when not configured."""
    if not keys:
        return None
    try:
        return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
    except ValueError as exc:
        raise ValueError("AUTOM_SECRETS_KEY must be comma-separated Fernet keys") from exc


class AccessService:
    """Use cases of workspaces, members, tokens and secrets."""

    def __init__(
        self,
        engine: AsyncEngine,
        signer: TokenSigner,
        cipher: MultiFernet | None,
        relay: OutboxRelay | None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._cipher = cipher
        self._relay = relay

    async def load_revocations(self) -> int:
        """Seed the signer's revocation list from the database (events cover other services)."""
        t = db.api_tokens
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.expires_at).where(
                        t.c.revoked_at.is_not(None), t.c.expires_at > _now()
                    )
                )
            ).all()
        for row in rows:
            self._signer.revocations.revoke(row.id, row.expires_at.timestamp())
        return len(rows)

    async def create_workspace(self, caller: Principal, name: str) -> tuple[Row[Any], str]:
        """A new workspace owned by the caller, with an owner token for it."""
        if not WORKSPACE_NAME.match(name):
            raise ValidationFailed([Violation("name", f"must match {WORKSPACE_NAME.pattern}")])
        workspace_id = str(uuid.uuid4())
        now = _now()
        try:
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        insert(db.workspaces)
                        .values(id=workspace_id, name=name, created_at=now)
                        .returning(*db.workspaces.c)
                    )
                ).one()
                await conn.execute(
                    insert(db.members).values(
                        workspace_id=workspace_id, principal=caller.subject, role="owner"
                    )
                )
                await audit.record(
                    conn,
                    caller,
                    Change(
                        action="workspace.create",
                        target_type="workspace",
                        target_id=workspace_id,
                        workspace_id=workspace_id,
                        details={"name": name, "owner": caller.subject},
                    ),
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"a workspace named {name!r} already exists") from exc
        token = await self._issue(
            caller, workspace_id, caller.subject, Role.OWNER, "owner", DEFAULT_TTL
        )
        return row, token[1]

    async def bootstrap_owner(
        self, name: str, principal: str, *, ttl_seconds: int
    ) -> tuple[str, str]:
        """The workspace named `name` (created if missing) with `principal` as an owner, and
        a new owner token; re-running it only mints another token. Returns (id, token)."""
        if not WORKSPACE_NAME.match(name):
            raise ValidationFailed([Violation("name", f"must match {WORKSPACE_NAME.pattern}")])
        async with self._engine.begin() as conn:
            await conn.execute(
                pg_insert(db.workspaces)
                .values(id=str(uuid.uuid4()), name=name, created_at=_now())
                .on_conflict_do_nothing(index_elements=[db.workspaces.c.name])
            )
            workspace_id = (
                await conn.execute(select(db.workspaces.c.id).where(db.workspaces.c.name == name))
            ).scalar_one()
            await conn.execute(
                pg_insert(db.members)
                .values(workspace_id=workspace_id, principal=principal, role="owner")
                .on_conflict_do_nothing()
            )
            role = (
                await conn.execute(
                    select(db.members.c.role).where(
                        db.members.c.workspace_id == workspace_id,
                        db.members.c.principal == principal,
                    )
                )
            ).scalar_one()
        if role != "owner":
            # Promotion goes through SetMember, which tells every service about it.
            raise ValidationFailed(
                [Violation("owner", f"{principal} is already a {role} here; use SetMember")]
            )
        # The operator at the console: the audit log names the bootstrap as the token's maker.
        operator = Principal(
            subject="admin:bootstrap", workspace_id=ANY_WORKSPACE, role=Role.ADMIN, token_id=""
        )
        _, token = await self._issue(
            operator, str(workspace_id), principal, Role.OWNER, "bootstrap", ttl_seconds
        )
        return str(workspace_id), token

    async def _issue(
        self, caller: Principal, workspace_id: str, principal: str, role: Role, name: str, ttl: int
    ) -> tuple[Row[Any], str]:
        secret, jti, exp = self._signer.issue(
            subject=principal, workspace_id=workspace_id, role=role, ttl_seconds=ttl
        )
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    insert(db.api_tokens)
                    .values(
                        id=jti,
                        workspace_id=workspace_id,
                        principal=principal,
                        role=role.value,
                        name=name,
                        created_at=_now(),
                        expires_at=datetime.fromtimestamp(exp, UTC),
                    )
                    .returning(*db.api_tokens.c)
                )
            ).one()
            await audit.record(
                conn,
                caller,
                Change(
                    action="token.create",
                    target_type="token",
                    target_id=jti,
                    workspace_id=workspace_id,
                    details={"principal": principal, "role": role.value, "name": name},
                ),
            )
        return row, secret

    async def list_members(self, caller: Principal) -> list[Any]:
        """Members of the caller's workspace."""
        t = db.members
        async with self._engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(*t.c)
                        .where(t.c.workspace_id == caller.workspace_id)
                        .order_by(t.c.principal)
                    )
                ).all()
            )

    async def set_member(self, caller: Principal, principal: str, role: Role | None) -> Row[Any]:
        """Add a member or change its role."""
        violations = []
        if not PRINCIPAL.match(principal):
            violations.append(Violation("principal", "must look like `user:alice`"))
        if role is None or role == Role.SERVICE:
            violations.append(Violation("role", "must be owner, editor or viewer"))
        if violations:
            raise ValidationFailed(violations)
        assert role is not None
        async with self._engine.begin() as conn:
            await self._ensure_workspace(conn, caller.workspace_id)
            m = db.members
            role_before = (
                await conn.execute(
                    select(m.c.role).where(
                        m.c.workspace_id == caller.workspace_id, m.c.principal == principal
                    )
                )
            ).scalar_one_or_none()
            stmt = pg_insert(db.members).values(
                workspace_id=caller.workspace_id, principal=principal, role=role.value
            )
            row = (
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["workspace_id", "principal"], set_={"role": role.value}
                    ).returning(*db.members.c)
                )
            ).one()
            # Tokens above the new role show it: they are limited to it everywhere now.
            above = [r.value for r in RANK if RANK[r] > RANK[role]]
            t = db.api_tokens
            await conn.execute(
                update(t)
                .where(
                    t.c.workspace_id == caller.workspace_id,
                    t.c.principal == principal,
                    t.c.role.in_(above),
                )
                .values(role=role.value)
            )
            changed_at = await self._member_changed(conn, caller.workspace_id, principal, role)
            await audit.record(
                conn,
                caller,
                Change(
                    action="member.set",
                    target_type="member",
                    target_id=principal,
                    workspace_id=caller.workspace_id,
                    details={"role": role.value, "role_before": role_before or ""},
                ),
            )
        self._applied(caller.workspace_id, principal, role, changed_at, [])
        return row

    async def _member_changed(
        self, conn: Any, workspace_id: str, principal: str, role: Role | None
    ) -> datetime:
        """Announce a member's role (None: removed) so every service caps its tokens."""
        now = _now()
        event = events_pb2.MemberChangedEvent(
            workspace_id=workspace_id,
            principal=principal,
            role=role.value if role else "",
            change_time=to_timestamp(now),
        )
        await conn.execute(
            insert(db.outbox).values(
                outbox_row(MEMBER_SUBJECT, f"member:{uuid.uuid4()}", event.SerializeToString())
            )
        )
        return now

    def _applied(
        self,
        workspace_id: str,
        principal: str,
        role: Role | None,
        changed_at: datetime,
        revoked: list[Row[Any]],
    ) -> None:
        """After commit: apply here at once; the relay carries it to the other services."""
        revocations = self._signer.revocations
        revocations.set_member(workspace_id, principal, role, changed_at.timestamp())
        for token in revoked:
            revocations.revoke(token.id, token.expires_at.timestamp())
        if self._relay is not None:
            self._relay.notify()

    async def _ensure_workspace(self, conn: Any, workspace_id: str) -> None:
        # Tokens minted for a workspace id (the dev token, tests) may precede its row.
        await conn.execute(
            pg_insert(db.workspaces)
            .values(id=workspace_id, name=workspace_id, created_at=_now())
            .on_conflict_do_nothing()
        )

    async def remove_member(self, caller: Principal, principal: str) -> None:
        """Remove a member; the last owner stays."""
        t = db.members
        async with self._engine.begin() as conn:
            owners = (
                (
                    await conn.execute(
                        select(t.c.principal).where(
                            t.c.workspace_id == caller.workspace_id, t.c.role == "owner"
                        )
                    )
                )
                .scalars()
                .all()
            )
            if list(owners) == [principal]:
                raise FailedPrecondition("cannot remove the last owner of a workspace")
            removed = (
                await conn.execute(
                    delete(t)
                    .where(t.c.workspace_id == caller.workspace_id, t.c.principal == principal)
                    .returning(t.c.role)
                )
            ).scalar_one_or_none()
            if removed is None:
                raise NotFound("member", principal)
            revoked = await self._revoke_all(conn, caller.workspace_id, principal)
            changed_at = await self._member_changed(conn, caller.workspace_id, principal, None)
            await audit.record(
                conn,
                caller,
                Change(
                    action="member.remove",
                    target_type="member",
                    target_id=principal,
                    workspace_id=caller.workspace_id,
                    details={"role_before": removed, "tokens_revoked": str(len(revoked))},
                ),
            )
        self._applied(caller.workspace_id, principal, None, changed_at, revoked)

    async def _revoke_all(self, conn: Any, workspace_id: str, principal: str) -> list[Row[Any]]:
        """Revoke every live token of a principal in a workspace (it left the workspace)."""
        t = db.api_tokens
        now = _now()
        rows = list(
            (
                await conn.execute(
                    update(t)
                    .where(
                        t.c.workspace_id == workspace_id,
                        t.c.principal == principal,
                        t.c.revoked_at.is_(None),
                        t.c.expires_at > now,
                    )
                    .values(revoked_at=now)
                    .returning(*t.c)
                )
            ).all()
        )
        for row in rows:
            await conn.execute(insert(db.outbox).values(self._revoked_row(row, now)))
        return rows

    @staticmethod
    def _revoked_row(row: Row[Any], now: datetime) -> dict[str, object]:
        event = events_pb2.TokenRevokedEvent(
            token_id=row.id,
            workspace_id=row.workspace_id,
            revoke_time=to_timestamp(now),
            expire_time=to_timestamp(row.expires_at),
        )
        return outbox_row(REVOKED_SUBJECT, f"revoked:{row.id}", event.SerializeToString())

    async def create_token(
        self, caller: Principal, principal: str, role: Role | None, name: str, ttl: int
    ) -> tuple[Row[Any], str]:
        """Issue a token for a principal of the caller's workspace (added as member if new)."""
        violations = []
        principal = principal or caller.subject
        if not PRINCIPAL.match(principal):
            violations.append(Violation("principal", "must look like `user:alice`"))
        if ttl < 0 or ttl > MAX_TTL:
            violations.append(Violation("ttl_seconds", f"must be between 0 and {MAX_TTL}"))
        if role == Role.SERVICE:
            violations.append(Violation("role", "must be owner, editor or viewer"))
        if violations:
            raise ValidationFailed(violations)
        t = db.members
        async with self._engine.begin() as conn:
            await self._ensure_workspace(conn, caller.workspace_id)
            member_role = (
                await conn.execute(
                    select(t.c.role).where(
                        t.c.workspace_id == caller.workspace_id, t.c.principal == principal
                    )
                )
            ).scalar_one_or_none()
            granted = role or (Role(member_role) if member_role else Role.VIEWER)
            changed_at = None
            if member_role is None:
                await conn.execute(
                    insert(t).values(
                        workspace_id=caller.workspace_id, principal=principal, role=granted.value
                    )
                )
                # Replaces an earlier removal, which would otherwise refuse the new token.
                changed_at = await self._member_changed(
                    conn, caller.workspace_id, principal, granted
                )
            elif RANK[granted] > RANK[Role(member_role)]:
                raise PermissionDenied(f"{principal} is a {member_role}; cannot grant {granted}")
        if changed_at is not None:
            self._applied(caller.workspace_id, principal, granted, changed_at, [])
        return await self._issue(
            caller, caller.workspace_id, principal, granted, name, ttl or DEFAULT_TTL
        )

    async def list_tokens(self, caller: Principal, include_inactive: bool) -> list[Any]:
        """Tokens of the caller's workspace, newest first."""
        t = db.api_tokens
        query = select(*t.c).where(t.c.workspace_id == caller.workspace_id)
        if not include_inactive:
            query = query.where(t.c.revoked_at.is_(None), t.c.expires_at > _now())
        async with self._engine.connect() as conn:
            return list((await conn.execute(query.order_by(t.c.created_at.desc()))).all())

    async def revoke_token(self, caller: Principal, token_id: str) -> Row[Any]:
        """Revoke now here, and everywhere else through the auth stream."""
        t = db.api_tokens
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(*t.c)
                    .where(t.c.id == token_id, t.c.workspace_id == caller.workspace_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None:
                raise NotFound("token", token_id)
            if row.revoked_at is not None:
                return row
            now = _now()
            row = (
                await conn.execute(
                    update(t).where(t.c.id == token_id).values(revoked_at=now).returning(*t.c)
                )
            ).one()
            await conn.execute(insert(db.outbox).values(self._revoked_row(row, now)))
            await audit.record(
                conn,
                caller,
                Change(
                    action="token.revoke",
                    target_type="token",
                    target_id=token_id,
                    workspace_id=caller.workspace_id,
                    details={"principal": row.principal, "name": row.name},
                ),
            )
        self._signer.revocations.revoke(token_id, row.expires_at.timestamp())
        if self._relay is not None:
            self._relay.notify()
        return row

    def _require_cipher(self) -> MultiFernet:
        if self._cipher is None:
            raise FailedPrecondition(
                "secrets are not configured: set AUTOM_SECRETS_KEY to a Fernet key",
                reason="secrets_not_configured",
            )
        return self._cipher

    async def set_secret(self, caller: Principal, name: str, value: str) -> Row[Any]:
        """Encrypt and store a secret value (write-only)."""
        violations = []
        if not SECRET_NAME.match(name):
            violations.append(Violation("name", f"must match {SECRET_NAME.pattern}"))
        if not value or len(value.encode()) > MAX_SECRET_BYTES:
            violations.append(Violation("value", f"must be 1 to {MAX_SECRET_BYTES} bytes"))
        if violations:
            raise ValidationFailed(violations)
        ciphertext = self._require_cipher().encrypt(value.encode())
        now = _now()
        stmt = pg_insert(db.secrets).values(
            workspace_id=caller.workspace_id,
            name=name,
            ciphertext=ciphertext,
            created_at=now,
            updated_at=now,
        )
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["workspace_id", "name"],
                        set_={"ciphertext": ciphertext, "updated_at": now},
                    ).returning(db.secrets.c.name, db.secrets.c.created_at, db.secrets.c.updated_at)
                )
            ).one()
            # The name only: a secret's value never reaches the audit log.
            await audit.record(
                conn,
                caller,
                Change(
                    action="secret.set",
                    target_type="secret",
                    target_id=name,
                    workspace_id=caller.workspace_id,
                    details={"replaced": str(row.created_at != row.updated_at).lower()},
                ),
            )
        return row

    async def list_secrets(self, caller: Principal) -> list[Any]:
        """Names and times only."""
        t = db.secrets
        async with self._engine.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(t.c.name, t.c.created_at, t.c.updated_at)
                        .where(t.c.workspace_id == caller.workspace_id)
                        .order_by(t.c.name)
                    )
                ).all()
            )

    async def delete_secret(self, caller: Principal, name: str) -> None:
        """Delete a secret."""
        t = db.secrets
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(t).where(t.c.workspace_id == caller.workspace_id, t.c.name == name)
            )
            if result.rowcount == 0:
                raise NotFound("secret", name)
            await audit.record(
                conn,
                caller,
                Change(
                    action="secret.delete",
                    target_type="secret",
                    target_id=name,
                    workspace_id=caller.workspace_id,
                ),
            )

    async def rotate_secrets(self) -> int:
        """Re-encrypt every secret with the newest key (after a key was added in front)."""
        cipher = self._require_cipher()
        t = db.secrets
        # One transaction: either every ciphertext moves to the new key or none does.
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.workspace_id, t.c.name, t.c.ciphertext).with_for_update()
                )
            ).all()
            for row in rows:
                try:
                    ciphertext = cipher.rotate(row.ciphertext)
                except InvalidToken as exc:
                    raise FailedPrecondition(
                        f"secret {row.name} of workspace {row.workspace_id} cannot be decrypted"
                        " with the configured keys; keep its old key in AUTOM_SECRETS_KEY"
                    ) from exc
                await conn.execute(
                    update(t)
                    .where(t.c.workspace_id == row.workspace_id, t.c.name == row.name)
                    .values(ciphertext=ciphertext)
                )
        return len(rows)

    async def secret_value(self, workspace_id: str, name: str) -> str | None:
        """One decrypted secret for this service's own checks (webhook signatures)."""
        cipher = self._require_cipher()
        t = db.secrets
        async with self._engine.connect() as conn:
            ciphertext = (
                await conn.execute(
                    select(t.c.ciphertext).where(t.c.workspace_id == workspace_id, t.c.name == name)
                )
            ).scalar_one_or_none()
        if ciphertext is None:
            return None
        try:
            return cipher.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise FailedPrecondition(
                f"secret {name} cannot be decrypted with the configured keys"
            ) from exc

    async def resolve_secrets(
        self, caller: Principal, workspace_id: str, names: list[str]
    ) -> tuple[dict[str, str], list[str]]:
        """Decrypt secrets for a run; only the executor's service principal may."""
        if caller.subject != SECRET_RESOLVER or caller.workspace_id != ANY_WORKSPACE:
            raise PermissionDenied("only the executor may resolve secrets")
        if not workspace_id:
            raise ValidationFailed([Violation("workspace_id", "required")])
        cipher = self._require_cipher()
        t = db.secrets
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(t.c.name, t.c.ciphertext).where(
                        t.c.workspace_id == workspace_id, t.c.name.in_(names)
                    )
                )
            ).all()
        values: dict[str, str] = {}
        for row in rows:
            try:
                values[row.name] = cipher.decrypt(row.ciphertext).decode()
            except InvalidToken as exc:
                raise FailedPrecondition(
                    f"secret {row.name} cannot be decrypted with the configured keys"
                ) from exc
        return values, sorted(set(names) - set(values))
