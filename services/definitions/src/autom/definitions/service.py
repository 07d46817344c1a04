"""Use cases of the definitions context; each owns its transaction and writes its events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.core.audit import Change
from autom.core.auth import ANY_WORKSPACE, Principal, Role, TokenSigner
from autom.core.bus import OutboxRelay, outbox_row
from autom.core.db import reading
from autom.core.errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    Violation,
)
from autom.core.netpolicy import Policy
from autom.core.paging import decode_page_token, encode_page_token, page_size
from autom.core.protoconv import to_timestamp
from autom.core.quotas import reached
from autom.core.registry import Catalog
from autom.definitions import audit, db
from autom.definitions.convert import triggers_to_proto
from autom.definitions.domain.validation import tool_automations, tool_mcp, validate_definition
from autom.definitions.mcp_servers import McpServers
from autom.definitions.quotas import (
    Quotas,
    activation_key,
    activation_lock,
    active_count,
    count_bound,
    refuse_activation,
    stored_limits,
)
from autom.definitions.webhooks import drop_webhooks, sync_webhooks

EVENT_SUBJECT = "automations.definitions.{}"
_AUDIT_ACTIONS = {
    "created": "automation.create",
    "updated": "automation.update",
    "paused": "automation.pause",
    "resumed": "automation.resume",
    "archived": "automation.archive",
    "deleted": "automation.delete",
}
_EVENT_TYPES = {
    "created": events_pb2.DEFINITION_EVENT_TYPE_CREATED,
    "updated": events_pb2.DEFINITION_EVENT_TYPE_UPDATED,
    "paused": events_pb2.DEFINITION_EVENT_TYPE_PAUSED,
    "resumed": events_pb2.DEFINITION_EVENT_TYPE_RESUMED,
    "archived": events_pb2.DEFINITION_EVENT_TYPE_ARCHIVED,
    "deleted": events_pb2.DEFINITION_EVENT_TYPE_DELETED,
}
DEFAULT_WORKSPACE = "default"
SCHEDULE_READER = "service:scheduler"
DEFAULT_TRIGGER_CHUNK = 100
MAX_TRIGGER_CHUNK = 500
# A streamed chunk stops growing here, far below gRPC's 4 MiB default receive limit.
CHUNK_BYTES = 1024 * 1024


# An automation by id or by name in a workspace, built once: SQLAlchemy then skips building
# the statement and its cache key on every lookup.
_LIVE = select(*db.automations.c).where(db.automations.c.deleted_at.is_(None))
_BY_ID = _LIVE.where(db.automations.c.id == bindparam("ref"))
_BY_NAME = _LIVE.where(
    db.automations.c.name == bindparam("ref"), db.automations.c.workspace_id == bindparam("ws")
)


# The statements of a create, built once with bind parameters (a name never equal to a
# column's: SQLAlchemy keeps those for the VALUES it renders itself).
# The claim of a request id: 1 when this request took it, 0 when it was taken before (a
# concurrent retry waits for the taker's transaction) or when there is no request id.
_KEY_COLUMNS = ("workspace_id", "method", "request_id", "resource_id", "created_at")
_keys = db.idempotency_keys
_key = {c: bindparam(f"key_{c}", type_=_keys.c[c].type) for c in _KEY_COLUMNS}
_claim = (
    pg_insert(_keys)
    .from_select(list(_KEY_COLUMNS), select(*_key.values()).where(_key["request_id"] != ""))
    .on_conflict_do_nothing()
    .returning(_keys.c.resource_id)
    .cte("claim")
)
_claimed = select(func.count().label("n")).select_from(_claim).cte("claimed")
_CLAIM_KEY = select(_claimed.c.n)
# A create's first statement. The request id's key goes in first; then, when this create
# makes the automation, the workspace's activation lock is taken: always in that order, so
# two creates never wait on each other. The workspace's stored limits and the new
# automation's revision come along.
_PREPARE_CREATE = select(
    _claimed.c.n.label("claimed"),
    case(
        (
            and_(
                bindparam("lock", type_=Boolean),
                or_(_claimed.c.n == 1, _key["request_id"] == ""),
            ),
            cast(activation_lock(bindparam("lock_key", type_=Text)), Text),
        )
    ).label("locked"),
    stored_limits(_key["workspace_id"]).scalar_subquery().label("limits"),
    db.revisions.next_value().label("revision"),
).select_from(_claimed)
# The second: automation, version 1, announcement and audit entry in one round trip. Its
# snapshot is taken after the first statement's lock, so the insert's guard counts every
# activation committed before; a refused insert leaves no row and the caller rolls back.
_a = db.automations
_NEW_COLUMNS = (
    "id",
    "workspace_id",
    "name",
    "status",
    "version",
    "definition",
    "pause_note",
    "created_by",
    "created_at",
    "updated_at",
    "revision",
)
_new = {c: bindparam(f"new_{c}", type_=_a.c[c].type) for c in _NEW_COLUMNS}
_usage = (
    active_count(_new["workspace_id"], bound=bindparam("active_bound", type_=BigInteger))
    .where(bindparam("check", type_=Boolean))
    .cte("usage")
)
_limit = bindparam("active_limit", type_=Float)
_NEW_AUTOMATION = (
    insert(_a)
    .from_select(
        list(_NEW_COLUMNS),
        select(*_new.values())
        .select_from(_usage)
        .where(or_(_limit <= 0, _usage.c.active < _limit)),
    )
    .returning(*_a.c)
    .cte("automation")
)
# A change's announcement; its audit entry rides along as a CTE.
_ANNOUNCE = insert(db.outbox).values(
    {c: bindparam(f"outbox_{c}") for c in ("subject", "msg_id", "payload", "created_at")}
)
_EMIT = _ANNOUNCE.add_cte(audit.ENTRY_CTE)
_CREATE = (
    select(_usage.c.active, *_NEW_AUTOMATION.c)
    .select_from(_usage.outerjoin(_NEW_AUTOMATION, true()))
    .add_cte(
        insert(db.automation_versions)
        .from_select(
            ["automation_id", "version", "definition", "created_by", "created_at"],
            select(
                _NEW_AUTOMATION.c.id,
                _NEW_AUTOMATION.c.version,
                _NEW_AUTOMATION.c.definition,
                _NEW_AUTOMATION.c.created_by,
                _NEW_AUTOMATION.c.created_at,
            ),
        )
        .cte("first_version")
    )
    .add_cte(_ANNOUNCE.cte("announce"))
    .add_cte(audit.ENTRY_CTE)
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Page:
    """Rows of one page and the cursor to the next."""

    rows: list[Row[Any]]
    next_token: str


@dataclass
class ScheduleTriggers:
    """One automation as the scheduler's resync needs it: identity, state, schedule triggers."""

    automation_id: str
    workspace_id: str
    name: str
    status: str
    version: int
    revision: int
    created_by: str
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def weight(self) -> int:
        """Roughly its encoded size in bytes."""
        return 256 + len(json.dumps(self.triggers, separators=(",", ":")))


def schedule_triggers(triggers: Any) -> list[dict[str, Any]]:
    """The `schedule` triggers of a definition's trigger list, ids defaulted `<type>_<index>`."""
    if not isinstance(triggers, list):
        return []
    return [
        {**t, "id": t.get("id") or f"schedule_{i}"}
        for i, t in enumerate(triggers)
        if isinstance(t, dict) and t.get("type") == "schedule"
    ]


class DefinitionsService:
    """Automations CRUD with versions, events through the outbox, and dev bootstrap."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Catalog,
        relay: OutboxRelay | None,
        policy: Policy | None = None,
        quotas: Quotas | None = None,
        mcp: McpServers | None = None,
    ) -> None:
        self._engine = engine
        self.catalog = catalog
        self._relay = relay
        self._policy = policy or Policy()
        self._quotas = quotas
        self._mcp = mcp

    def _published(self, announcement: Mapping[str, Any]) -> None:
        """After the commit: the relay publishes the change's announcement without a pass."""
        if self._relay is not None:
            row = {k: announcement[f"outbox_{k}"] for k in ("subject", "msg_id", "payload")}
            self._relay.hand_over([row])

    def validate(self, raw: dict[str, Any]) -> list[Violation]:
        """Every violation of a definition in JSON form."""
        return validate_definition(raw, self.catalog, self._policy)[1]

    async def validate_in_workspace(
        self, caller: Principal, raw: dict[str, Any]
    ) -> list[Violation]:
        """Every violation, `mcp:` tools included when the caller has a workspace."""
        violations = self.validate(raw)
        if self._mcp is not None and caller.workspace_id != ANY_WORKSPACE:
            violations += await self._mcp.check_tools(caller.workspace_id, tool_mcp(raw))
        return violations

    def _require_valid(self, raw: dict[str, Any]) -> None:
        violations = self.validate(raw)
        if violations:
            raise ValidationFailed(
                [
                    Violation(
                        f"definition.{v.field}" if v.field != "definition" else v.field,
                        v.description,
                    )
                    for v in violations
                ]
            )

    async def _check_mcp_tools(self, workspace_id: str, raw: dict[str, Any]) -> None:
        """Every `mcp:<server>/<tool>` names a registered server and a tool it lists."""
        wanted = [(f"definition.{path}", s, t) for path, s, t in tool_mcp(raw)]
        if not wanted:
            return
        if self._mcp is None:
            raise ValidationFailed(
                [Violation(path, "MCP servers are not available here") for path, _, _ in wanted]
            )
        violations = await self._mcp.check_tools(workspace_id, wanted)
        if violations:
            raise ValidationFailed(violations)

    async def _check_tool_targets(
        self, conn: AsyncConnection, workspace_id: str, raw: dict[str, Any]
    ) -> None:
        """Every `automation:<name>` tool names an automation of the workspace (or itself)."""
        wanted = tool_automations(raw)
        if not wanted:
            return
        t = db.automations
        found = set(
            (
                await conn.execute(
                    select(t.c.name).where(
                        t.c.workspace_id == workspace_id,
                        t.c.deleted_at.is_(None),
                        t.c.name.in_({name for _, name in wanted}),
                    )
                )
            ).scalars()
        )
        found.add(raw.get("name"))
        missing = [
            Violation(f"definition.{path}", f"no automation named {name!r} in this workspace")
            for path, name in wanted
            if name not in found
        ]
        if missing:
            raise ValidationFailed(missing)

    async def _emit(
        self,
        conn: AsyncConnection,
        kind: str,
        row: Row[Any] | Any,
        caller: Principal,
        *,
        before: Row[Any] | None = None,
    ) -> dict[str, Any]:
        """Announce a change (outbox) and append its audit entry, in the change's transaction.

        Returns the announcement, for `_published` once the transaction committed.
        """
        announcement = self._announcement(kind, row, caller, before=before)
        # One statement, one round trip: the entry rides along as a CTE.
        await conn.execute(_EMIT, announcement)
        return announcement

    def _announcement(
        self, kind: str, row: Row[Any] | Any, caller: Principal, *, before: Row[Any] | None = None
    ) -> dict[str, Any]:
        """The bind parameters of a change's outbox row and audit entry (`outbox_*`, `audit_*`)."""
        entry = audit.entry_params(
            caller,
            Change(
                action=_AUDIT_ACTIONS[kind],
                target_type="automation",
                target_id=row.id,
                workspace_id=row.workspace_id,
                version_before=before.version if before is not None else 0,
                version_after=0 if kind == "deleted" else row.version,
                details={
                    "name": row.name,
                    "status_before": before.status if before is not None else "",
                    "status": "deleted" if kind == "deleted" else row.status,
                },
            ),
        )
        event_id = str(uuid.uuid4())
        event = events_pb2.DefinitionEvent(
            event_id=event_id,
            type=_EVENT_TYPES[kind],
            workspace_id=row.workspace_id,
            automation_id=row.id,
            version=row.version,
            active=row.status == "active" and kind != "deleted",
            triggers=[] if kind == "deleted" else triggers_to_proto(row.definition),
            created_by=row.created_by,
            occur_time=to_timestamp(_now()),
            name=row.name,
            revision=row.revision,
        )
        announced = outbox_row(EVENT_SUBJECT.format(kind), event_id, event.SerializeToString())
        return {**{f"outbox_{k}": v for k, v in announced.items()}, **entry}

    async def _idempotent(
        self, conn: AsyncConnection, workspace_id: str, method: str, request_id: str
    ) -> str | None:
        if not request_id:
            return None
        t = db.idempotency_keys
        return (
            await conn.execute(
                select(t.c.resource_id).where(
                    t.c.workspace_id == workspace_id,
                    t.c.method == method,
                    t.c.request_id == request_id,
                )
            )
        ).scalar_one_or_none()

    async def _claim_request(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        method: str,
        request_id: str,
        resource_id: str,
    ) -> str | None:
        """Record that `request_id` makes `resource_id`; the resource it made before, if any.

        A concurrent request with the same id waits for this transaction, then finds its key.
        """
        if not request_id:
            return None
        claimed = await conn.execute(
            _CLAIM_KEY,
            {
                "key_workspace_id": workspace_id,
                "key_method": method,
                "key_request_id": request_id,
                "key_resource_id": resource_id,
                "key_created_at": _now(),
            },
        )
        if claimed.scalar_one():
            return None
        return await self._idempotent(conn, workspace_id, method, request_id)

    async def _made_before(
        self, conn: AsyncConnection, caller: Principal, workspace_id: str, method: str, key: str
    ) -> Row[Any]:
        """The automation an earlier request with this id made (its key was taken)."""
        existing = await self._idempotent(conn, workspace_id, method, key)
        if existing is None:  # keys are never deleted: the taker rolled back meanwhile
            raise Conflict(f"request {key} is being retried concurrently; retry")
        return await self._get_row(conn, caller, existing)

    async def create(
        self, caller: Principal, raw: dict[str, Any], *, request_id: str, paused: bool
    ) -> Row[Any]:
        """Create an automation at version 1 (idempotent on request_id)."""
        self._require_valid(raw)
        ws = caller.workspace_id
        # Before the transaction: listing a server's tools may take a network round trip.
        await self._check_mcp_tools(ws, raw)
        quotas = self._quotas
        activates = quotas is not None and not paused
        automation_id = str(uuid.uuid4())
        now = _now()
        try:
            async with self._engine.begin() as conn:
                prepared = (
                    await conn.execute(
                        _PREPARE_CREATE,
                        {
                            "key_workspace_id": ws,
                            "key_method": "CreateAutomation",
                            "key_request_id": request_id,
                            "key_resource_id": automation_id,
                            "key_created_at": now,
                            "lock": activates,
                            "lock_key": activation_key(ws),
                        },
                    )
                ).one()
                if request_id and not prepared.claimed:
                    return await self._made_before(conn, caller, ws, "CreateAutomation", request_id)
                await self._check_tool_targets(conn, ws, raw)
                if quotas is not None:
                    quotas.refuse_schedules(ws, prepared.limits, raw)
                new = {
                    "id": automation_id,
                    "workspace_id": ws,
                    "name": raw["name"],
                    "status": "paused" if paused else "active",
                    "version": 1,
                    "definition": raw,
                    "pause_note": "",
                    "created_by": caller.subject,
                    "created_at": now,
                    "updated_at": now,
                    "revision": prepared.revision,
                }
                limit = quotas.active_limit(prepared.limits) if quotas and activates else 0.0
                announced = self._announcement("created", SimpleNamespace(**new), caller)
                params = {
                    **{f"new_{c}": v for c, v in new.items()},
                    "check": activates,
                    "active_limit": limit,
                    "active_bound": count_bound(limit),
                    **announced,
                }
                row = (await conn.execute(_CREATE, params)).one()
                if quotas is not None and activates and reached(row.active, limit):
                    # The insert's guard and this check are the same rule: raising rolls back.
                    # The count stopped at the limit; the refusal says how many there are.
                    exact = await quotas.active_automations(conn, ws)
                    refuse_activation(ws, max(exact, row.active), limit)
                await sync_webhooks(conn, ws, automation_id, raw, created=True)
        except IntegrityError as exc:
            raise AlreadyExists(f"an automation named {raw['name']!r} already exists") from exc
        self._published(announced)
        return row

    async def _get_row(
        self,
        conn: AsyncConnection,
        caller: Principal,
        ref: str,
        *,
        for_update: bool = False,
        workspace_id: str = "",
    ) -> Row[Any]:
        try:
            uuid.UUID(ref)
            is_id = True
        except ValueError:
            is_id = False
        if is_id:
            query, params = _BY_ID, {"ref": ref}
        else:
            params = {"ref": ref, "ws": workspace_id or caller.workspace_id}
            query = _BY_NAME
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query, params)).one_or_none()
        if row is None or not caller.sees(row.workspace_id):
            raise NotFound("automation", ref)
        return row

    async def get(
        self, caller: Principal, ref: str, version: int = 0, *, workspace_id: str = ""
    ) -> tuple[Row[Any], dict[str, Any]]:
        """The automation and its definition at `version` (0 = latest); a name is looked up
        in `workspace_id` (default: the caller's)."""
        if not ref:
            raise ValidationFailed([Violation("automation_id", "required")])
        if version < 0:
            raise ValidationFailed([Violation("version", "must not be negative")])
        # Versions never change: the row and an older version need no common snapshot.
        async with reading(self._engine) as conn:
            row = await self._get_row(conn, caller, ref, workspace_id=workspace_id)
            if version == 0 or version == row.version:
                return row, row.definition
            v = db.automation_versions
            definition = (
                await conn.execute(
                    select(v.c.definition).where(
                        v.c.automation_id == row.id, v.c.version == version
                    )
                )
            ).scalar_one_or_none()
            if definition is None:
                raise NotFound("automation version", f"{ref}@{version}")
            return row, definition

    async def list_automations(
        self,
        caller: Principal,
        *,
        size: int,
        token: str,
        status: str | None,
        tag: str,
        name_prefix: str,
    ) -> Page:
        """A page of automations ordered by (name, id)."""
        t = db.automations
        limit = page_size(size)
        query = select(*t.c).where(t.c.deleted_at.is_(None))
        if caller.workspace_id != "*":
            query = query.where(t.c.workspace_id == caller.workspace_id)
        if status:
            query = query.where(t.c.status == status)
        if tag:
            query = query.where(t.c.definition["metadata"]["tags"].contains([tag]))
        if name_prefix:
            escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(t.c.name.like(escaped + "%", escape="\\"))
        if token:
            cursor = decode_page_token(token, keys={"n": str, "i": str})
            query = query.where(
                or_(
                    t.c.name > cursor["n"],
                    and_(t.c.name == cursor["n"], t.c.id > cursor["i"]),
                )
            )
        async with self._engine.connect() as conn:
            rows = list(
                (await conn.execute(query.order_by(t.c.name, t.c.id).limit(limit + 1))).all()
            )
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = encode_page_token({"n": rows[-1].name, "i": rows[-1].id})
        return Page(rows, next_token)

    async def schedule_triggers(
        self, caller: Principal, *, chunk: int
    ) -> AsyncIterator[list[ScheduleTriggers]]:
        """Every live automation's schedule triggers, in id order, in bounded chunks.

        Only the triggers are read from each definition (never the plan), one page at a
        time; a chunk ends at `chunk` automations or about CHUNK_BYTES, whichever is first.
        """
        if caller.subject != SCHEDULE_READER or caller.workspace_id != "*":
            raise PermissionDenied("only the scheduler may stream schedule triggers")
        if chunk < 0 or chunk > MAX_TRIGGER_CHUNK:
            raise ValidationFailed(
                [Violation("chunk_size", f"must be between 0 and {MAX_TRIGGER_CHUNK}")]
            )
        chunk = chunk or DEFAULT_TRIGGER_CHUNK
        t = db.automations
        columns = (
            t.c.id,
            t.c.workspace_id,
            t.c.name,
            t.c.status,
            t.c.version,
            t.c.revision,
            t.c.created_by,
            t.c.definition["triggers"].label("triggers"),
        )
        after = ""
        while True:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(*columns)
                        .where(t.c.deleted_at.is_(None), t.c.id > after)
                        .order_by(t.c.id)
                        .limit(chunk)
                    )
                ).all()
            out: list[ScheduleTriggers] = []
            size = 0
            for row in rows:
                item = ScheduleTriggers(
                    automation_id=row.id,
                    workspace_id=row.workspace_id,
                    name=row.name,
                    status=row.status,
                    version=row.version,
                    revision=row.revision,
                    created_by=row.created_by,
                    triggers=schedule_triggers(row.triggers),
                )
                weight = item.weight()
                if out and size + weight > CHUNK_BYTES:
                    yield out
                    out, size = [], 0
                out.append(item)
                size += weight
            if out:
                yield out
            if len(rows) < chunk:
                return
            after = rows[-1].id

    async def update(
        self, caller: Principal, ref: str, *, version: int, raw: dict[str, Any], request_id: str
    ) -> Row[Any]:
        """Replace the definition; `version` must be the one the caller read."""
        self._require_valid(raw)
        if version <= 0:
            raise ValidationFailed([Violation("version", "required: the version you read")])
        # A member edits its own workspace: list MCP tools before taking the row lock.
        early = caller.workspace_id != ANY_WORKSPACE
        if early:
            await self._check_mcp_tools(caller.workspace_id, raw)
        async with self._engine.begin() as conn:
            row = await self._get_row(conn, caller, ref, for_update=True)
            done = await self._claim_request(
                conn, row.workspace_id, "UpdateAutomation", request_id, row.id
            )
            if done is not None:
                return row
            if row.status == "archived":
                raise Conflict("archived automations are read-only")
            if row.version != version:
                raise Conflict(
                    f"automation is at version {row.version}, not {version}; re-read and retry"
                )
            await self._check_tool_targets(conn, row.workspace_id, raw)
            if not early:
                await self._check_mcp_tools(row.workspace_id, raw)
            if self._quotas is not None:
                await self._quotas.check_schedules(conn, row.workspace_id, raw)
            now = _now()
            try:
                async with conn.begin_nested():
                    new = (
                        await conn.execute(
                            update(db.automations)
                            .where(db.automations.c.id == row.id)
                            .values(
                                version=row.version + 1,
                                definition=raw,
                                name=raw["name"],
                                updated_at=now,
                                revision=db.revisions.next_value(),
                            )
                            .returning(*db.automations.c)
                        )
                    ).one()
            except IntegrityError as exc:
                raise AlreadyExists(f"an automation named {raw['name']!r} already exists") from exc
            await conn.execute(
                insert(db.automation_versions).values(
                    automation_id=row.id,
                    version=new.version,
                    definition=raw,
                    created_by=caller.subject,
                    created_at=now,
                )
            )
            await sync_webhooks(conn, new.workspace_id, new.id, raw)
            announced = await self._emit(conn, "updated", new, caller, before=row)
        self._published(announced)
        return new

    async def set_status(
        self, caller: Principal, ref: str, *, kind: str, note: str = ""
    ) -> Row[Any]:
        """Pause, resume or archive; repeating the current state is a no-op."""
        target = {"paused": "paused", "resumed": "active", "archived": "archived"}[kind]
        async with self._engine.begin() as conn:
            row = await self._get_row(conn, caller, ref, for_update=True)
            if row.status == target:
                return row
            if row.status == "archived":
                raise Conflict("archived automations cannot change state")
            if target == "active" and self._quotas is not None:
                await self._quotas.check_activation(conn, row.workspace_id)
            new = (
                await conn.execute(
                    update(db.automations)
                    .where(db.automations.c.id == row.id)
                    .values(
                        status=target,
                        pause_note=note if target == "paused" else "",
                        updated_at=_now(),
                        revision=db.revisions.next_value(),
                    )
                    .returning(*db.automations.c)
                )
            ).one()
            announced = await self._emit(conn, kind, new, caller, before=row)
        self._published(announced)
        return new

    async def delete(self, caller: Principal, ref: str) -> None:
        """Soft-delete: hidden everywhere, versions kept for runs that reference them."""
        async with self._engine.begin() as conn:
            row = await self._get_row(conn, caller, ref, for_update=True)
            now = _now()
            gone = (
                await conn.execute(
                    update(db.automations)
                    .where(db.automations.c.id == row.id)
                    .values(deleted_at=now, updated_at=now, revision=db.revisions.next_value())
                    .returning(*db.automations.c)
                )
            ).one()
            await drop_webhooks(conn, gone.id)
            announced = await self._emit(conn, "deleted", gone, caller, before=row)
        self._published(announced)

    async def list_versions(
        self, caller: Principal, ref: str, *, size: int, token: str
    ) -> tuple[list[Row[Any]], str]:
        """Versions newest first."""
        limit = page_size(size)
        v = db.automation_versions
        async with self._engine.connect() as conn:
            row = await self._get_row(conn, caller, ref)
            query = select(*v.c).where(v.c.automation_id == row.id)
            if token:
                cursor = decode_page_token(token, keys={"v": int})
                query = query.where(v.c.version < cursor["v"])
            rows = list(
                (await conn.execute(query.order_by(v.c.version.desc()).limit(limit + 1))).all()
            )
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = encode_page_token({"v": rows[-1].version})
        return rows, next_token

    async def count_automations(self) -> int:
        """How many live automations exist (for diagnostics)."""
        async with self._engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).where(db.automations.c.deleted_at.is_(None))
                    )
                ).scalar_one()
            )

    async def bootstrap_dev(self, signer: TokenSigner, principal: str = "user:dev") -> str:
        """Ensure the `default` workspace with an owner and return an owner token for it."""
        now = _now()
        token, jti, exp = signer.issue(
            subject=principal,
            workspace_id=DEFAULT_WORKSPACE,
            role=Role.OWNER,
            ttl_seconds=365 * 86400,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                pg_insert(db.workspaces)
                .values(id=DEFAULT_WORKSPACE, name=DEFAULT_WORKSPACE, created_at=now)
                .on_conflict_do_nothing()
            )
            await conn.execute(
                pg_insert(db.members)
                .values(workspace_id=DEFAULT_WORKSPACE, principal=principal, role="owner")
                .on_conflict_do_nothing()
            )
            await conn.execute(
                insert(db.api_tokens).values(
                    id=jti,
                    workspace_id=DEFAULT_WORKSPACE,
                    principal=principal,
                    role="owner",
                    name="dev",
                    created_at=now,
                    expires_at=datetime.fromtimestamp(exp, UTC),
                )
            )
        return token
