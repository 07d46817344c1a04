"""Use cases of the scheduler; each owns its transaction and writes fires to the outbox."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.core.auth import Principal
from autom.core.bus import outbox_row
from autom.core.errors import NotFound, ValidationFailed, Violation
from autom.core.logging import log_context
from autom.core.paging import decode_page_token, encode_page_token, page_size
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.schedule import ScheduleError, TooManyFiresError, describe, matching_times, preview
from autom.scheduler import db
from autom.scheduler.convert import config_from_row
from autom.scheduler.domain.config import ScheduleConfig, parse_config, spec_for
from autom.scheduler.domain.due import (
    BACKFILL,
    MANUAL,
    DuePlan,
    due_time,
    first_fire,
    plan_due,
)
from autom.scheduler.domain.model import AutomationChange, fire_id, schedule_id
from autom.scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

FIRE_SUBJECT = "automations.fires.{}"
MAX_PREVIEW = 100
TERMINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled", "timed_out", "skipped")
_US = timedelta(microseconds=1)
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


def utcnow() -> datetime:
    """The current instant (aware UTC)."""
    return datetime.now(UTC)


@dataclass
class Page:
    """Rows of one page and the cursor to the next."""

    rows: list[Row[Any]]
    next_token: str


@dataclass
class SyncResult:
    """What a resync changed."""

    upserted: int = 0
    removed: int = 0


def _bounded(value: int, field: str, default: int, maximum: int) -> int:
    if value < 0 or value > maximum:
        raise ValidationFailed([Violation(field, f"must be between 0 and {maximum}")])
    return value or default


def fire_event(
    row: Any,
    *,
    fid: str,
    kind: str,
    nominal: datetime,
    fired_at: datetime,
    last_fired: datetime | None,
    inputs: dict[str, Any],
) -> events_pb2.FireEvent:
    """The FireEvent announcing one fire of a schedule."""
    trigger_type = {"manual": "manual", "backfill": "backfill"}.get(kind, "schedule")
    return events_pb2.FireEvent(
        fire_id=fid,
        workspace_id=row.workspace_id,
        automation_id=row.automation_id,
        automation_version=row.automation_version,
        trigger_id=row.trigger_id,
        trigger_type=trigger_type,
        scheduled_for=to_timestamp(nominal),
        fired_time=to_timestamp(fired_at),
        last_fired_time=to_timestamp(last_fired),
        inputs=dict_to_struct(inputs),
        principal=row.principal,
    )


def _fire_rows(
    row: Any, fid: str, kind: str, nominal: datetime, now: datetime, event: events_pb2.FireEvent
) -> tuple[dict[str, Any], dict[str, object]]:
    fire = {
        "fire_id": fid,
        "schedule_id": row.id,
        "workspace_id": row.workspace_id,
        "scheduled_for": nominal,
        "fired_at": now,
        "kind": kind,
    }
    out = outbox_row(FIRE_SUBJECT.format(row.workspace_id), fid, event.SerializeToString())
    out["created_at"] = now  # the relay's release time
    return fire, out


class SchedulerService:
    """Schedule state from definitions, the due loop's transaction, and the API's use cases."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: SchedulerSettings,
        on_fires: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._on_fires = on_fires or (lambda: None)

    # -- schedule state --------------------------------------------------------------

    async def apply_change(self, change: AutomationChange) -> bool:
        """Apply one automation change; False when it is older than what is stored."""
        async with self._engine.begin() as conn:
            return await self._apply(conn, change, utcnow())

    async def _apply(
        self,
        conn: AsyncConnection,
        change: AutomationChange,
        now: datetime,
        *,
        listing: bool = False,
    ) -> bool:
        a = db.automations
        # Serialise changes of one automation across handlers and replicas.
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
            {"k": f"scheduler:{change.automation_id}"},
        )
        stored = (
            await conn.execute(
                select(a.c.version, a.c.changed_at, a.c.status, a.c.deleted).where(
                    a.c.id == change.automation_id
                )
            )
        ).one_or_none()
        if stored is not None and (stored.version, stored.changed_at) > (
            change.version,
            change.changed_at,
        ):
            # A listing stamps the state with its update time, a hair before the event
            # announcing the same state; then it still rebuilds the schedules (SyncAll).
            same_state = (
                listing
                and not stored.deleted
                and stored.version == change.version
                and stored.status == change.status
            )
            if not same_state:
                log.debug("ignoring stale change v%s", change.version)
                return False
        else:
            values = {
                "workspace_id": change.workspace_id,
                "version": change.version,
                "changed_at": change.changed_at,
                "status": change.status,
                "deleted": change.deleted,
            }
            await conn.execute(
                pg_insert(a)
                .values(id=change.automation_id, **values)
                .on_conflict_do_update(index_elements=[a.c.id], set_=values)
            )
        await self._apply_schedules(conn, change, now)
        return True

    async def _apply_schedules(
        self, conn: AsyncConnection, change: AutomationChange, now: datetime
    ) -> None:
        s = db.schedules
        existing = {
            row.trigger_id: row
            for row in (
                await conn.execute(
                    select(*s.c).where(s.c.automation_id == change.automation_id).with_for_update()
                )
            ).all()
        }
        wanted: dict[str, tuple[ScheduleConfig, dict[str, Any]]] = {}
        unreadable: set[str] = set()
        if not change.deleted:
            for i, trigger in enumerate(change.schedule_triggers()):
                try:
                    wanted[trigger.id] = (parse_config(trigger.config), trigger.inputs)
                except ValidationFailed as exc:
                    # Definitions validates configs with the same rules, so this is a version
                    # skew. Never drop silently: the schedule it had (if any) keeps firing.
                    unreadable.add(trigger.id)
                    log.error(
                        "automation %s: schedule trigger %s (%d) is invalid, %s: %s",
                        change.automation_id,
                        trigger.id,
                        i,
                        "keeping its schedule" if trigger.id in existing else "not scheduled",
                        exc,
                    )
        gone = [tid for tid in existing if tid not in wanted and tid not in unreadable]
        if gone:
            ids = [existing[t].id for t in gone]
            await _cancel_staged(conn, ids, now)
            await conn.execute(delete(s).where(s.c.id.in_(ids)))
        kept = [existing[t].id for t in unreadable if t in existing]
        if kept:
            # A kept schedule still follows pause and resume.
            await conn.execute(
                update(s).where(s.c.id.in_(kept)).values(enabled=change.active, updated_at=now)
            )
        for tid, (cfg, inputs) in wanted.items():
            await self._upsert_schedule(conn, change, tid, cfg, inputs, existing.get(tid), now)

    async def _upsert_schedule(
        self,
        conn: AsyncConnection,
        change: AutomationChange,
        trigger_id: str,
        cfg: ScheduleConfig,
        inputs: dict[str, Any],
        old: Row[Any] | None,
        now: datetime,
    ) -> None:
        s = db.schedules
        sid = schedule_id(change.automation_id, trigger_id)
        values: dict[str, Any] = {
            "workspace_id": change.workspace_id,
            "automation_id": change.automation_id,
            "automation_version": change.version,
            "trigger_id": trigger_id,
            "cron": cfg.cron,
            "timezone": cfg.timezone,
            "on_missing": cfg.on_missing,
            "on_repeated": cfg.on_repeated,
            "catchup": cfg.catchup,
            "catchup_window_s": cfg.catchup_window.total_seconds(),
            "jitter_s": cfg.jitter.total_seconds(),
            "start_at": cfg.start_at,
            "end_at": cfg.end_at,
            "max_fires": cfg.max_fires,
            "inputs": inputs,
            "principal": change.created_by,
            "enabled": change.active,
            "updated_at": now,
        }
        same_timing = (
            old is not None
            and old.enabled
            and change.active
            and config_from_row(old).timing_key() == cfg.timing_key()
        )
        if not same_timing:
            # New, edited, paused or resumed: the next fire counts from now, so resuming
            # never replays the paused time (Backfill does that on request).
            nxt = None
            fired = old.fired_count if old is not None else 0
            if change.active and (cfg.max_fires is None or fired < cfg.max_fires):
                nxt = first_fire(cfg, now)
            values["next_fire_at"] = nxt
            values["due_at"] = due_time(sid, cfg, nxt)
            if old is not None:
                await _cancel_staged(conn, [sid], now)
        insert_values = {**values, "id": sid, "created_at": now}
        insert_values.setdefault("next_fire_at", None)
        insert_values.setdefault("due_at", None)
        await conn.execute(
            pg_insert(s)
            .values(**insert_values)
            .on_conflict_do_update(index_elements=[s.c.id], set_=values)
        )

    async def sync(self, changes: Iterable[AutomationChange], started: datetime) -> SyncResult:
        """Apply a full listing of automations and drop what it no longer holds."""
        result = SyncResult()
        seen: set[str] = set()
        batch: list[AutomationChange] = []

        async def flush() -> None:
            async with self._engine.begin() as conn:
                for change in batch:
                    if await self._apply(conn, change, utcnow(), listing=True):
                        result.upserted += len(change.schedule_triggers())
            batch.clear()

        for change in changes:
            seen.add(change.automation_id)
            batch.append(change)
            if len(batch) >= 100:
                await flush()
        if batch:
            await flush()
        result.removed = await self._remove_unlisted(seen, started)
        return result

    async def _remove_unlisted(self, seen: set[str], started: datetime) -> int:
        a, s = db.automations, db.schedules
        async with self._engine.begin() as conn:
            # Changes applied after the listing started belong to automations it may not
            # have seen yet; events keep those right.
            fresh = set(
                (
                    await conn.execute(
                        select(a.c.id).where(a.c.changed_at >= started, a.c.deleted.is_(False))
                    )
                ).scalars()
            )
            stale = [
                aid
                for aid in (await conn.execute(select(s.c.automation_id).distinct())).scalars()
                if aid not in seen and aid not in fresh
            ]
            stale_states = [
                aid
                for aid in (
                    await conn.execute(select(a.c.id).where(a.c.deleted.is_(False)))
                ).scalars()
                if aid not in seen and aid not in fresh
            ]
            if stale_states:
                await conn.execute(
                    update(a).where(a.c.id.in_(stale_states)).values(deleted=True, status="deleted")
                )
            if not stale:
                return 0
            removed = await conn.execute(delete(s).where(s.c.automation_id.in_(stale)))
            return int(removed.rowcount or 0)

    # -- the due loop ---------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fire one batch of due schedules in one transaction; returns schedules handled."""
        s = db.schedules
        settings = self._settings
        tolerance = timedelta(seconds=settings.scheduler_late_tolerance_s)
        lead = timedelta(seconds=settings.scheduler_lead_s)
        async with self._engine.begin() as conn:
            now = utcnow()
            rows = (
                await conn.execute(
                    select(*s.c)
                    .where(s.c.enabled.is_(True), s.c.due_at <= now + lead)
                    .order_by(s.c.due_at)
                    .limit(settings.scheduler_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            fire_rows: list[dict[str, Any]] = []
            outbox_rows: dict[str, dict[str, object]] = {}
            plans: list[tuple[Row[Any], list[tuple[str, datetime]], DuePlan | None]] = []
            for i, row in enumerate(rows):
                if i and i % 50 == 0:
                    # Planning is CPU work: let the relay release fires due meanwhile.
                    await asyncio.sleep(0)
                cfg = config_from_row(row)
                try:
                    plan = plan_due(
                        schedule_id=row.id,
                        config=cfg,
                        next_fire_at=row.next_fire_at,
                        fired_count=row.fired_count,
                        now=now,
                        late_tolerance=tolerance,
                        chunk=settings.scheduler_catchup_chunk,
                        ahead=lead,
                    )
                except ScheduleError:
                    log.exception("schedule %s cannot be computed; disabling it", row.id)
                    plans.append((row, [], None))
                    continue
                last = row.last_fired_at
                fids = []
                for nominal, kind in plan.fires:
                    fid = fire_id(row.id, nominal)
                    # Planned ahead: the relay publishes it at its due time, not before.
                    release = max(now, due_time(row.id, cfg, nominal) or nominal)
                    event = fire_event(
                        row,
                        fid=fid,
                        kind=kind,
                        nominal=nominal,
                        fired_at=release,
                        last_fired=last,
                        inputs=row.inputs,
                    )
                    fire, out = _fire_rows(row, fid, kind, nominal, release, event)
                    fire_rows.append(fire)
                    outbox_rows[fid] = out
                    fids.append((fid, nominal))
                    last = nominal
                plans.append((row, fids, plan))
            inserted = await _insert_fires(conn, fire_rows)
            await _insert_outbox(conn, [outbox_rows[fid] for fid in outbox_rows if fid in inserted])
            updates: dict[str, list[Any]] = {
                k: [] for k in ("id", "nxt", "due", "last", "fired", "missed")
            }
            for row, fids, outcome in plans:
                emitted = [nominal for fid, nominal in fids if fid in inserted]
                if len(emitted) != len(fids):
                    log.warning(
                        "schedule %s: %d nominal time(s) had already fired",
                        row.id,
                        len(fids) - len(emitted),
                    )
                updates["id"].append(row.id)
                updates["nxt"].append(outcome.next_fire_at if outcome else None)
                updates["due"].append(outcome.due_at if outcome else None)
                updates["last"].append(fids[-1][1] if fids else row.last_fired_at)
                updates["fired"].append(row.fired_count + len(emitted))
                updates["missed"].append(row.missed_count + (outcome.missed if outcome else 0))
                if outcome and outcome.missed:
                    with log_context(automation_id=row.automation_id):
                        log.warning(
                            "schedule %s: %d nominal time(s) missed (catchup=%s)",
                            row.id,
                            outcome.missed,
                            row.catchup,
                        )
            await conn.execute(_ADVANCE, {**updates, "now": now})
        if inserted:
            self._on_fires()
        return len(rows)

    async def unstage(self, *, stale: bool = False) -> int:
        """Give back fires planned ahead but not yet released (graceful stop).

        Their schedules step back to the earliest such instant, so whichever replica runs
        next fires them, or applies the catch-up policy if none runs in time. With
        `stale`, it gives back instead those whose release passed longer ago than the late
        tolerance with no relay running (every replica was down): at start, before the
        relay would publish them late, so the catch-up policy decides about them.
        """
        f, s = db.fires, db.schedules
        now = utcnow()
        tolerance = timedelta(seconds=self._settings.scheduler_late_tolerance_s)
        async with self._engine.begin() as conn:
            staged = (
                f.c.published_at.is_(None),
                f.c.fired_at < now - tolerance if stale else f.c.fired_at > now,
                f.c.kind.in_(("scheduled", "catchup")),
            )
            counts = {
                r.schedule_id: r
                for r in (
                    await conn.execute(
                        select(
                            f.c.schedule_id,
                            func.min(f.c.scheduled_for).label("first"),
                            func.count().label("n"),
                        )
                        .where(*staged)
                        .group_by(f.c.schedule_id)
                    )
                ).all()
            }
            if not counts:
                return 0
            rows = (
                await conn.execute(select(*s.c).where(s.c.id.in_(list(counts))).with_for_update())
            ).all()
            fids = list(
                (
                    await conn.execute(
                        delete(f)
                        .where(*staged, f.c.schedule_id.in_([r.id for r in rows]))
                        .returning(f.c.fire_id)
                    )
                ).scalars()
            )
            if fids:
                await conn.execute(delete(db.outbox).where(db.outbox.c.msg_id.in_(fids)))
            for row in rows:
                first = counts[row.id].first
                last = (
                    await conn.execute(
                        select(func.max(f.c.scheduled_for)).where(
                            f.c.schedule_id == row.id, f.c.kind.in_(("scheduled", "catchup"))
                        )
                    )
                ).scalar_one_or_none()
                await conn.execute(
                    update(s)
                    .where(s.c.id == row.id)
                    .values(
                        next_fire_at=first,
                        due_at=due_time(row.id, config_from_row(row), first),
                        last_fired_at=last,
                        fired_count=max(0, row.fired_count - counts[row.id].n),
                    )
                )
        log.info("gave back %d fire(s) planned ahead", len(fids))
        return len(fids)

    async def seconds_until_due(self, cap: float) -> float:
        """Seconds until the earliest due schedule, at most `cap`."""
        s = db.schedules
        async with self._engine.connect() as conn:
            due = (
                await conn.execute(
                    select(func.min(s.c.due_at)).where(
                        s.c.enabled.is_(True), s.c.due_at.is_not(None)
                    )
                )
            ).scalar_one_or_none()
        if due is None:
            return cap
        lead = timedelta(seconds=self._settings.scheduler_lead_s)
        delay: float = (due - lead - utcnow()).total_seconds()
        return max(0.0, min(cap, delay))

    async def prune(self, older_than: timedelta) -> int:
        """Delete published fire rows older than the retention (next_fire_at guards the past)."""
        f = db.fires
        cutoff = utcnow() - older_than
        async with self._engine.begin() as conn:
            doomed = (
                select(f.c.fire_id)
                .where(f.c.fired_at < cutoff, f.c.published_at.is_not(None))
                .limit(10_000)
                .scalar_subquery()
            )
            result = await conn.execute(delete(f).where(f.c.fire_id.in_(doomed)))
            return int(result.rowcount or 0)

    # -- run events ------------------------------------------------------------------

    async def record_run(self, fid: str, run_id: str, status: str) -> bool:
        """Attach a run's id and status to its fire; terminal statuses are never overwritten."""
        f, s = db.fires, db.schedules
        async with self._engine.begin() as conn:
            sid = (
                await conn.execute(
                    update(f)
                    .where(
                        f.c.fire_id == fid,
                        or_(f.c.run_status.is_(None), f.c.run_status.not_in(TERMINAL_RUN_STATUSES)),
                    )
                    .values(run_id=run_id or f.c.run_id, run_status=status or f.c.run_status)
                    .returning(f.c.schedule_id)
                )
            ).scalar_one_or_none()
            if sid is not None and status == "skipped":
                await conn.execute(
                    update(s).where(s.c.id == sid).values(skipped_count=s.c.skipped_count + 1)
                )
        return sid is not None

    # -- API ---------------------------------------------------------------------------

    async def _schedule(
        self, conn: AsyncConnection, caller: Principal, sid: str, *, for_update: bool = False
    ) -> Row[Any]:
        if not sid:
            raise ValidationFailed([Violation("schedule_id", "required")])
        s = db.schedules
        query = select(*s.c).where(s.c.id == sid)
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).one_or_none()
        if row is None or not caller.sees(row.workspace_id):
            raise NotFound("schedule", sid)
        return row

    async def list_schedules(
        self,
        caller: Principal,
        *,
        automation_id: str,
        enabled_only: bool,
        size: int,
        token: str,
    ) -> Page:
        """A page of schedules ordered by next fire time (ended and paused last)."""
        s = db.schedules
        limit = page_size(size)
        order = func.coalesce(s.c.next_fire_at, literal(_FOREVER))
        query = select(*s.c, order.label("sort_at"))
        if caller.workspace_id != "*":
            query = query.where(s.c.workspace_id == caller.workspace_id)
        if automation_id:
            query = query.where(s.c.automation_id == automation_id)
        if enabled_only:
            query = query.where(s.c.enabled.is_(True), s.c.next_fire_at.is_not(None))
        if token:
            cursor = decode_page_token(token)
            try:
                at = datetime.fromisoformat(str(cursor["t"]))
                last_id = str(cursor["i"])
            except (KeyError, ValueError) as exc:
                raise ValidationFailed([Violation("page_token", "malformed page token")]) from exc
            query = query.where(or_(order > at, and_(order == at, s.c.id > last_id)))
        async with self._engine.connect() as conn:
            result = await conn.execute(query.order_by(order, s.c.id).limit(limit + 1))
            rows = cast(list[Row[Any]], list(result.all()))
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = encode_page_token({"t": rows[-1].sort_at.isoformat(), "i": rows[-1].id})
        return Page(rows, next_token)

    async def describe_schedule(
        self, caller: Principal, sid: str, *, next_count: int, recent_count: int
    ) -> tuple[Row[Any], list[datetime], list[Row[Any]]]:
        """A schedule, its next fire times and its recent fires (newest first)."""
        n = _bounded(next_count, "next_count", 5, MAX_PREVIEW)
        m = _bounded(recent_count, "recent_count", 10, MAX_PREVIEW)
        f = db.fires
        async with self._engine.connect() as conn:
            row = await self._schedule(conn, caller, sid)
            recent = list(
                (
                    await conn.execute(
                        select(*f.c)
                        .where(f.c.schedule_id == row.id)
                        .order_by(f.c.fired_at.desc(), f.c.scheduled_for.desc())
                        .limit(m)
                    )
                ).all()
            )
        # Fires planned ahead but not released yet are still upcoming to a reader.
        upcoming = sorted(
            f.scheduled_for
            for f in recent
            if f.published_at is None and f.kind in ("scheduled", "catchup")
        )[:n]
        if row.enabled and row.next_fire_at is not None and len(upcoming) < n:
            cfg = config_from_row(row)
            upcoming.append(row.next_fire_at)
            left = (
                None
                if cfg.max_fires is None
                else cfg.max_fires - row.fired_count + len(upcoming) - 1
            )
            while len(upcoming) < n and (left is None or len(upcoming) < left):
                nxt = first_fire(cfg, upcoming[-1])
                if nxt is None:
                    break
                upcoming.append(nxt)
        return row, upcoming, recent

    @staticmethod
    def preview(
        *,
        cron: str,
        timezone: str,
        on_missing: str,
        on_repeated: str,
        count: int,
        after: datetime | None,
    ) -> tuple[str, list[datetime]]:
        """Describe a spec and list its next instants, storing nothing."""
        violations = []
        if count < 0 or count > MAX_PREVIEW:
            violations.append(Violation("count", f"must be between 0 and {MAX_PREVIEW}"))
        if not cron.strip():
            violations.append(Violation("cron", "required: a cron expression"))
        spec = None
        if cron.strip():
            try:
                spec = spec_for(
                    cron, timezone or "UTC", on_missing or "shift", on_repeated or "first"
                )
            except ScheduleError as exc:
                violations.append(Violation(exc.field, exc.message))
        if violations or spec is None:
            raise ValidationFailed(violations)
        try:
            times = preview(spec, count or 5, after or utcnow())
        except ScheduleError as exc:
            raise ValidationFailed([Violation(exc.field, exc.message)]) from exc
        return describe(spec), times

    async def trigger_now(
        self, caller: Principal, sid: str, *, request_id: str, inputs: dict[str, Any]
    ) -> Row[Any]:
        """Fire a schedule now (even while paused), idempotent on request_id."""
        f = db.fires
        fid = f"{sid}:manual:{request_id or uuid.uuid4()}"
        async with self._engine.begin() as conn:
            row = await self._schedule(conn, caller, sid)
            now = utcnow()
            event = fire_event(
                row,
                fid=fid,
                kind=MANUAL,
                nominal=now,
                fired_at=now,
                last_fired=row.last_fired_at,
                inputs={**row.inputs, **inputs},
            )
            fire, out = _fire_rows(row, fid, MANUAL, now, now, event)
            created = (
                await conn.execute(
                    pg_insert(f).values(fire).on_conflict_do_nothing().returning(f.c.fire_id)
                )
            ).scalar_one_or_none()
            if created is not None:
                await conn.execute(pg_insert(db.outbox).values(out))
            stored = (await conn.execute(select(*f.c).where(f.c.fire_id == fid))).one()
        with log_context(automation_id=row.automation_id, fire_id=fid):
            log.info("manual fire %s", "emitted" if created else "already emitted")
        if created is not None:
            self._on_fires()
        return stored

    async def backfill(
        self, caller: Principal, sid: str, *, start: datetime | None, end: datetime | None
    ) -> tuple[int, int]:
        """Fire every nominal instant in (start, end], rate-limited; returns (created, already)."""
        violations = []
        now = utcnow()
        if start is None:
            violations.append(Violation("start_time", "required"))
        if end is None:
            violations.append(Violation("end_time", "required"))
        elif end > now:
            violations.append(Violation("end_time", "must not be in the future"))
        if start is not None and end is not None and end <= start:
            violations.append(Violation("end_time", "must be after start_time"))
        if violations:
            raise ValidationFailed(violations)
        assert start is not None and end is not None
        limit = self._settings.scheduler_backfill_max_fires
        rate = self._settings.scheduler_backfill_rate_per_s
        f = db.fires
        async with self._engine.begin() as conn:
            row = await self._schedule(conn, caller, sid)
            try:
                times = matching_times(config_from_row(row).spec, start, end, limit=limit)
            except TooManyFiresError as exc:
                raise ValidationFailed(
                    [Violation("end_time", f"the range holds more than {limit} fire times")]
                ) from exc
            fires, outs = {}, {}
            last = None
            for nominal in times:
                fid = fire_id(row.id, nominal)
                event = fire_event(
                    row,
                    fid=fid,
                    kind=BACKFILL,
                    nominal=nominal,
                    fired_at=now,
                    last_fired=last,
                    inputs=row.inputs,
                )
                fires[fid], outs[fid] = _fire_rows(row, fid, BACKFILL, nominal, now, event)
                last = nominal
            created: list[str] = []
            for chunk in _chunks(list(fires.values()), 1000):
                created.extend(
                    (
                        await conn.execute(
                            pg_insert(f)
                            .values(chunk)
                            .on_conflict_do_nothing()
                            .returning(f.c.fire_id)
                        )
                    ).scalars()
                )
            created_set = set(created)
            released = []
            for i, fid in enumerate(fid for fid in fires if fid in created_set):
                # created_at is the relay's release time: a backfill never floods executors.
                released.append({**outs[fid], "created_at": now + timedelta(seconds=i / rate)})
            for chunk in _chunks(released, 1000):
                await conn.execute(pg_insert(db.outbox).values(chunk))
        with log_context(automation_id=row.automation_id):
            log.info(
                "backfill of %s: %d fired, %d already fired",
                sid,
                len(created),
                len(times) - len(created),
            )
        if created:
            self._on_fires()
        return len(created), len(times) - len(created)

    async def remove(self, caller: Principal, sid: str) -> None:
        """Delete a schedule (its fires stay as history)."""
        async with self._engine.begin() as conn:
            row = await self._schedule(conn, caller, sid, for_update=True)
            await _cancel_staged(conn, [row.id], utcnow())
            await conn.execute(delete(db.schedules).where(db.schedules.c.id == row.id))
        log.info("schedule %s removed", sid)


# The due loop's statements take whole columns as arrays: one round trip and no per-row
# statement compilation, whatever the batch size.
_INSERT_FIRES = text(
    f"""
    INSERT INTO {db.SCHEMA}.fires
        (fire_id, schedule_id, workspace_id, scheduled_for, fired_at, kind)
    SELECT * FROM unnest(
        CAST(:fire_id AS text[]), CAST(:schedule_id AS text[]), CAST(:workspace_id AS text[]),
        CAST(:scheduled_for AS timestamptz[]), CAST(:fired_at AS timestamptz[]),
        CAST(:kind AS text[]))
    ON CONFLICT DO NOTHING
    RETURNING fire_id
    """
)
_INSERT_OUTBOX = text(
    f"""
    INSERT INTO {db.SCHEMA}.outbox (subject, msg_id, payload, created_at)
    SELECT * FROM unnest(
        CAST(:subject AS text[]), CAST(:msg_id AS text[]), CAST(:payload AS bytea[]),
        CAST(:created_at AS timestamptz[]))
    """
)
_ADVANCE = text(
    f"""
    UPDATE {db.SCHEMA}.schedules AS s
    SET next_fire_at = u.nxt, due_at = u.due, last_fired_at = u.last,
        fired_count = u.fired, missed_count = u.missed, updated_at = :now
    FROM unnest(
        CAST(:id AS text[]), CAST(:nxt AS timestamptz[]), CAST(:due AS timestamptz[]),
        CAST(:last AS timestamptz[]), CAST(:fired AS bigint[]), CAST(:missed AS bigint[]))
        AS u(id, nxt, due, last, fired, missed)
    WHERE s.id = u.id
    """
)


async def _cancel_staged(conn: AsyncConnection, schedule_ids: list[str], now: datetime) -> None:
    """Drop fires planned ahead but not yet released: their schedule changed or went away."""
    f, o = db.fires, db.outbox
    staged = list(
        (
            await conn.execute(
                delete(f)
                .where(
                    f.c.schedule_id.in_(schedule_ids),
                    f.c.published_at.is_(None),
                    f.c.fired_at > now,
                    f.c.kind.in_(("scheduled", "catchup")),
                )
                .returning(f.c.fire_id)
            )
        ).scalars()
    )
    if staged:
        await conn.execute(delete(o).where(o.c.msg_id.in_(staged), o.c.published_at.is_(None)))
        log.info("cancelled %d fire(s) planned ahead", len(staged))


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


async def _insert_fires(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    if not rows:
        return set()
    names = ("fire_id", "schedule_id", "workspace_id", "scheduled_for", "fired_at", "kind")
    result = await conn.execute(_INSERT_FIRES, _columns(rows, names))
    return set(result.scalars())


async def _insert_outbox(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        names = ("subject", "msg_id", "payload", "created_at")
        await conn.execute(_INSERT_OUTBOX, _columns(rows, names))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
