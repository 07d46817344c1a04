"""Per-workspace quotas: what the admin set, the defaults, and the checks definitions owns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.core.auth import ANY_WORKSPACE, Principal
from autom.core.errors import NotFound, QuotaExceeded, ValidationFailed, Violation
from autom.core.quotas import QUOTA_NAMES, QuotaDefaults, effective, reached
from autom.definitions import db
from autom.schedule import ScheduleError, parse_spec, preview

# Fires of one schedule looked at to find its shortest interval.
_PREVIEW = 8


def shortest_interval(definition: Mapping[str, Any]) -> float | None:
    """Seconds between the closest two upcoming fires of any schedule trigger; None if none."""
    gaps: list[float] = []
    for trigger in definition.get("triggers") or []:
        if not isinstance(trigger, dict) or trigger.get("type") != "schedule":
            continue
        config = trigger.get("config") or {}
        try:
            spec = parse_spec(str(config.get("cron", "")), str(config.get("timezone", "UTC")))
            times = preview(spec, _PREVIEW)
        except (ScheduleError, ValueError):
            continue
        gaps += [(b - a).total_seconds() for a, b in pairwise(times)]
    return min(gaps) if gaps else None


def has_schedule(definition: Mapping[str, Any]) -> bool:
    """Whether a definition has a schedule trigger (only those have an interval limit)."""
    triggers = definition.get("triggers") or []
    return any(isinstance(t, dict) and t.get("type") == "schedule" for t in triggers)


def stored_limits(workspace_id: str | BindParameter[str]) -> Select[Any]:
    """The limits the admin set for the workspace (no row: none)."""
    q = db.workspace_quotas
    return select(q.c.limits).where(q.c.workspace_id == workspace_id)


def active_count(
    workspace_id: str | BindParameter[str], *, bound: BindParameter[int] | None = None
) -> Select[int]:
    """How many live automations of the workspace are active (column `active`).

    With `bound`, counts at most that many (NULL: all): enough to tell a limit reached.
    """
    live = select(literal(1)).where(db.automations.c.workspace_id == workspace_id, db.LIVE_ACTIVE)
    if bound is not None:
        live = live.limit(bound)
    return select(func.count().label("active")).select_from(live.subquery())


def count_bound(limit: float) -> int | None:
    """The `bound` of `active_count` that still tells whether `limit` is reached (0: none)."""
    return math.ceil(limit) if limit > 0 else None


def activation_lock(key: str | BindParameter[str]) -> Any:
    """Takes the lock that serialises activations of one workspace (see `activation_key`)."""
    return func.pg_advisory_xact_lock(func.hashtext(key))


def activation_key(workspace_id: str) -> str:
    """The key of a workspace's activation lock: two activations at once cannot both pass."""
    return f"quota:{workspace_id}"


def refuse_activation(workspace_id: str, current: int, limit: float) -> None:
    """Raise QuotaExceeded when `current` active automations leave no room for one more."""
    if reached(current, limit):
        raise QuotaExceeded(workspace_id, "active_automations", current, limit)


# Built once (every activation runs them): SQLAlchemy builds no statement per call.
_ACTIVATION_LOCK = select(activation_lock(bindparam("key")))
_ACTIVATION_USAGE = select(
    stored_limits(bindparam("ws")).scalar_subquery(),
    active_count(bindparam("ws")).scalar_subquery(),
)


class Quotas:
    """Reads and sets workspace quotas; enforces the ones about automations."""

    def __init__(self, engine: AsyncEngine, defaults: QuotaDefaults) -> None:
        self._engine = engine
        self._defaults = defaults

    async def limits(self, conn: AsyncConnection, workspace_id: str) -> dict[str, float]:
        """Every quota's effective limit for the workspace."""
        return self._effective(
            (await conn.execute(stored_limits(workspace_id))).scalar_one_or_none()
        )

    def _effective(self, stored: Mapping[str, float] | None) -> dict[str, float]:
        return effective(self._defaults, stored or {})

    async def active_automations(self, conn: AsyncConnection, workspace_id: str) -> int:
        """Live automations of the workspace in state active."""
        return int((await conn.execute(active_count(workspace_id))).scalar_one())

    async def check_activation(self, conn: AsyncConnection, workspace_id: str) -> None:
        """Refuse one more active automation at the limit."""
        await conn.execute(_ACTIVATION_LOCK, {"key": activation_key(workspace_id)})
        # After the lock (a statement's snapshot is taken when it starts): both in one trip.
        stored, current = (await conn.execute(_ACTIVATION_USAGE, {"ws": workspace_id})).one()
        refuse_activation(workspace_id, int(current), self.active_limit(stored))

    def active_limit(self, stored: Mapping[str, float] | None) -> float:
        """The workspace's limit of active automations, from its stored limits (0: none)."""
        return self._effective(stored)["active_automations"]

    async def check_schedules(
        self, conn: AsyncConnection, workspace_id: str, definition: Mapping[str, Any]
    ) -> None:
        """Refuse a schedule firing more often than the workspace allows."""
        if has_schedule(definition):
            stored = (await conn.execute(stored_limits(workspace_id))).scalar_one_or_none()
            self.refuse_schedules(workspace_id, stored, definition)

    def refuse_schedules(
        self, workspace_id: str, stored: Mapping[str, float] | None, definition: Mapping[str, Any]
    ) -> None:
        """`check_schedules` with the workspace's stored limits already read."""
        if not has_schedule(definition):
            return
        limit = self._effective(stored)["min_schedule_interval_seconds"]
        if limit <= 0:
            return  # no limit (the default): no fire times to compute
        shortest = shortest_interval(definition)
        if shortest is not None and shortest < limit:
            raise QuotaExceeded(workspace_id, "min_schedule_interval_seconds", shortest, limit)

    def _workspace(self, caller: Principal, workspace_id: str) -> str:
        ws = workspace_id or caller.workspace_id
        if ws == ANY_WORKSPACE:
            raise ValidationFailed([Violation("workspace_id", "required")])
        if not caller.sees(ws):
            raise NotFound("workspace", ws)
        return ws

    async def get(self, caller: Principal, workspace_id: str) -> tuple[str, dict[str, float], int]:
        """The workspace, its limits and its active automations."""
        ws = self._workspace(caller, workspace_id)
        async with self._engine.connect() as conn:
            return ws, await self.limits(conn, ws), await self.active_automations(conn, ws)

    async def set(
        self,
        caller: Principal,
        workspace_id: str,
        limits: Mapping[str, float],
        reset: list[str],
    ) -> dict[str, float]:
        """Set (or reset to default) some quotas of a workspace; the effective limits."""
        violations = [
            Violation(f"limits.{name}", f"unknown quota (one of {', '.join(QUOTA_NAMES)})")
            for name in [*limits, *reset]
            if name not in QUOTA_NAMES
        ]
        violations += [
            Violation(f"limits.{name}", "must be 0 (no limit) or more")
            for name, value in limits.items()
            if value < 0
        ]
        if not workspace_id:
            violations.append(Violation("workspace_id", "required"))
        if violations:
            raise ValidationFailed(violations)
        t = db.workspace_quotas
        async with self._engine.begin() as conn:
            current = (
                await conn.execute(
                    select(t.c.limits).where(t.c.workspace_id == workspace_id).with_for_update()
                )
            ).scalar_one_or_none() or {}
            merged = {k: v for k, v in {**current, **limits}.items() if k not in reset}
            now = datetime.now(UTC)
            await conn.execute(
                pg_insert(t)
                .values(
                    workspace_id=workspace_id,
                    limits=merged,
                    updated_at=now,
                    updated_by=caller.subject,
                )
                .on_conflict_do_update(
                    index_elements=["workspace_id"],
                    set_={"limits": merged, "updated_at": now, "updated_by": caller.subject},
                )
            )
            return await self.limits(conn, workspace_id)
