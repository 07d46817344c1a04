"""Use cases of the scheduler; each owns its transaction and writes fires to the outbox."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.core import metrics, tracing
from autom.core.audit import Change, audit_row
from autom.core.auth import Principal
from autom.core.batch import Batcher
from autom.core.bus import outbox_row
from autom.core.errors import NotFound, ValidationFailed, Violation
from autom.core.logging import log_context
from autom.core.paging import decode_page_token, encode_page_token, page_size
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.schedule import (
    ScheduleError,
    TooManyFiresError,
    describe,
    matching_times,
    preview,
    schedule_errors,
)
from autom.scheduler import db, store
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
# At most this many run events are recorded in one transaction.
RUN_EVENTS_PER_COMMIT = 100

FIRE_SUBJECT = "automations.fires.{}"
MAX_PREVIEW = 100
SWEEP_BATCH = 500


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
    row: Any,
    fid: str,
    kind: str,
    nominal: datetime,
    now: datetime,
    event: events_pb2.FireEvent,
    *,
    handover: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, object]]:
    """The fire's row and its outbox row, released at `handover` (default: `now`)."""
    fire = {
        "fire_id": fid,
        "schedule_id": row.id,
        "workspace_id": row.workspace_id,
        "scheduled_for": nominal,
        "fired_at": now,
        "kind": kind,
    }
    out = outbox_row(FIRE_SUBJECT.format(row.workspace_id), fid, event.SerializeToString())
    out["created_at"] = handover or now  # the relay's release time
    return fire, out


def _fire_span(row: Any, fid: str, kind: str, nominal: datetime) -> Span:
    """The due loop's span of one fire: the root of the fire's trace (see autom.core.tracing)."""
    return tracing.tracer().start_span(
        "scheduler.fire",
        context=tracing.fire_parent(fid),
        attributes={
            "autom.fire_id": fid,
            "autom.fire.kind": kind,
            "autom.schedule_id": row.id,
            "autom.automation_id": row.automation_id,
            "autom.scheduled_for": nominal.isoformat(),
        },
    )


class SchedulerService:
    """Schedule state from definitions, the due loop's transaction, and the API's use cases."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: SchedulerSettings,
        on_fires: Callable[[], None] | None = None,
        on_audit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._on_fires = on_fires or (lambda: None)
        self._on_audit = on_audit or (lambda: None)
        # Run events come two per fire (started, finished): concurrent ones share a commit.
        self._runs: Batcher[tuple[str, str, str], bool] = Batcher(
            self._record_runs, max_size=RUN_EVENTS_PER_COMMIT, alone=self._record_run
        )

    async def _audit(self, conn: AsyncConnection, caller: Principal, change: Change) -> None:
        """Append an audit entry to the audit outbox, in the change's transaction."""
        await conn.execute(insert(db.audit_outbox).values(audit_row("scheduler", change, caller)))

    async def record(self, caller: Principal, change: Change) -> None:
        """Append an audit entry for a change made outside one transaction (a resync)."""
        async with self._engine.begin() as conn:
            await self._audit(conn, caller, change)
        self._on_audit()

    # -- schedule state --------------------------------------------------------------

    async def apply_change(self, change: AutomationChange) -> bool:
        """Apply one automation change; False when its revision is not newer than stored."""
        async with self._engine.begin() as conn:
            await store.lock_automation(conn, change.automation_id)
            # Stamped with the latest resync: one running now must not sweep what this event
            # just said exists.
            return await self._apply(conn, change, utcnow(), listing=False, generation=None)

    async def _apply(
        self,
        conn: AsyncConnection,
        change: AutomationChange,
        now: datetime,
        *,
        listing: bool,
        generation: int | None,
    ) -> bool:
        # A listing of the revision already applied still rebuilds the schedules, so a
        # resync repairs a removed schedule (SyncAll) or a sweep's tombstone (a real
        # delete has a newer revision than any listing of the live automation).
        if not await store.record_change(conn, change, listing=listing, generation=generation):
            log.debug("ignoring stale change r%s", change.revision)
            return False
        await self._apply_schedules(conn, change, now)
        return True

    async def _apply_schedules(
        self, conn: AsyncConnection, change: AutomationChange, now: datetime
    ) -> None:
        existing = await store.schedules_of(conn, change.automation_id)
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
        gone = [existing[t].id for t in existing if t not in wanted and t not in unreadable]
        await store.delete_schedules(conn, gone, now)
        kept = [existing[t].id for t in unreadable if t in existing]
        # A kept schedule still follows pause and resume.
        await store.set_enabled(conn, kept, change.active, now)
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
                await store.cancel_staged(conn, [sid], now)
        await store.upsert_schedule(conn, sid, values, now)

    async def begin_sync(self) -> int:
        """Start a resync: the generation its listing stamps."""
        async with self._engine.begin() as conn:
            return await store.next_sync_generation(conn)

    async def apply_listed(self, changes: Iterable[AutomationChange], generation: int) -> int:
        """Apply one chunk of a resync's listing; returns the schedule triggers applied."""
        upserted = 0
        async with self._engine.begin() as conn:
            for change in changes:
                await store.lock_automation(conn, change.automation_id)
                if await self._apply(conn, change, utcnow(), listing=True, generation=generation):
                    upserted += len(change.schedule_triggers())
        return upserted

    async def sweep(self, generation: int) -> int:
        """After a complete listing: drop schedules of automations it did not hold.

        Works in batches by id, so memory does not grow with the number of automations;
        an event applied meanwhile stamps its automation and so keeps it.
        """
        removed = 0
        after = ""
        while True:
            async with self._engine.begin() as conn:
                ids = await store.unstamped(conn, generation, after, SWEEP_BATCH)
                for aid in ids:
                    await store.lock_automation(conn, aid)
                    state = await store.automation_state(conn, aid)
                    if state is None or state.deleted or state.sync_generation >= generation:
                        continue
                    await store.mark_deleted(conn, aid)
                    gone = [row.id for row in (await store.schedules_of(conn, aid)).values()]
                    removed += await store.delete_schedules(conn, gone, utcnow())
            if len(ids) < SWEEP_BATCH:
                break
            after = ids[-1]
        while True:
            async with self._engine.begin() as conn:
                orphans = await store.orphan_schedule_ids(conn, SWEEP_BATCH)
                removed += await store.delete_schedules(conn, orphans, utcnow())
            if len(orphans) < SWEEP_BATCH:
                return removed

    # -- the due loop ---------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fire one batch of due schedules in one transaction; returns schedules handled."""
        settings = self._settings
        tolerance = timedelta(seconds=settings.scheduler_late_tolerance_s)
        lead = timedelta(seconds=settings.scheduler_lead_s)
        handover = timedelta(seconds=settings.scheduler_handover_s)
        async with self._engine.begin() as conn:
            now = utcnow()
            rows = await store.due_schedules(conn, now + lead, settings.scheduler_batch_size)
            if not rows:
                return 0
            fire_rows: list[dict[str, Any]] = []
            outbox_rows: dict[str, dict[str, object]] = {}
            spans: list[Span] = []
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
                    spans.append(_fire_span(row, fid, kind, nominal))
                    # Planned ahead: the relay hands it over shortly before its due time,
                    # which the event carries (fired_time); the executor starts it then.
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
                    fire, out = _fire_rows(
                        row,
                        fid,
                        kind,
                        nominal,
                        release,
                        event,
                        handover=max(now, release - handover),
                    )
                    fire_rows.append(fire)
                    outbox_rows[fid] = out
                    fids.append((fid, nominal))
                    last = nominal
                plans.append((row, fids, plan))
            inserted = await store.insert_fires_bulk(conn, fire_rows)
            await store.insert_outbox_bulk(
                conn, [outbox_rows[fid] for fid in outbox_rows if fid in inserted]
            )
            missed = 0
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
                    missed += outcome.missed
                    with log_context(automation_id=row.automation_id):
                        log.warning(
                            "schedule %s: %d nominal time(s) missed (catchup=%s)",
                            row.id,
                            outcome.missed,
                            row.catchup,
                        )
            await store.advance(conn, updates, now)
        for span in spans:
            span.end()
        if missed:
            metrics.FIRES.labels("missed").inc(missed)
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
        now = utcnow()
        tolerance = timedelta(seconds=self._settings.scheduler_late_tolerance_s)
        async with self._engine.begin() as conn:
            rows, counts, n = await store.give_back_staged(
                conn, now=now, released_before=now - tolerance if stale else None
            )
            for row in rows:
                first = counts[row.id].first
                await store.rewind(
                    conn,
                    row.id,
                    {
                        "next_fire_at": first,
                        "due_at": due_time(row.id, config_from_row(row), first),
                        "last_fired_at": await store.last_nominal(conn, row.id),
                        "fired_count": max(0, row.fired_count - counts[row.id].n),
                    },
                )
        if rows:
            log.info("gave back %d fire(s) planned ahead", n)
        return n

    async def seconds_until_due(self, cap: float) -> float:
        """Seconds until the earliest due schedule, at most `cap`."""
        async with self._engine.connect() as conn:
            due = await store.earliest_due(conn)
        if due is None:
            return cap
        lead = timedelta(seconds=self._settings.scheduler_lead_s)
        delay: float = (due - lead - utcnow()).total_seconds()
        return max(0.0, min(cap, delay))

    async def prune(self, older_than: timedelta) -> int:
        """Delete published fire rows older than the retention (next_fire_at guards the past)."""
        async with self._engine.begin() as conn:
            return await store.prune_fires(conn, utcnow() - older_than, 10_000)

    # -- run events ------------------------------------------------------------------

    async def record_run(self, fid: str, run_id: str, status: str) -> bool:
        """Attach a run's id and status to its fire; terminal statuses are never overwritten."""
        return await self._runs.submit((fid, run_id, status))

    async def _record_run(self, item: tuple[str, str, str]) -> bool:
        async with self._engine.begin() as conn:
            return await store.record_run(conn, *item)

    async def _record_runs(self, items: list[tuple[str, str, str]]) -> list[bool]:
        # Rows locked in fire id order, so two replicas' batches cannot deadlock on them;
        # the order of one fire's events does not matter (a terminal status is never undone).
        order = sorted(range(len(items)), key=lambda i: items[i][0])
        async with self._engine.begin() as conn:
            done = {i: await store.record_run(conn, *items[i]) for i in order}
        return [done[i] for i in range(len(items))]

    # -- API ---------------------------------------------------------------------------

    async def _schedule(
        self, conn: AsyncConnection, caller: Principal, sid: str, *, for_update: bool = False
    ) -> Row[Any]:
        if not sid:
            raise ValidationFailed([Violation("schedule_id", "required")])
        row = await store.schedule(conn, sid, for_update=for_update)
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
        limit = page_size(size)
        after = None
        if token:
            cursor = decode_page_token(token)
            try:
                after = (datetime.fromisoformat(str(cursor["t"])), str(cursor["i"]))
            except (KeyError, ValueError) as exc:
                raise ValidationFailed([Violation("page_token", "malformed page token")]) from exc
        async with self._engine.connect() as conn:
            rows = await store.page_of_schedules(
                conn,
                workspace_id=caller.workspace_id,
                automation_id=automation_id,
                enabled_only=enabled_only,
                after=after,
                limit=limit + 1,
            )
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
        async with self._engine.connect() as conn:
            row = await self._schedule(conn, caller, sid)
            recent = await store.recent_fires(conn, row.id, m)
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
            except ScheduleError:
                # Every bad field at once: a bad cron must not hide a bad time zone.
                violations.extend(
                    Violation(exc.field, exc.message)
                    for exc in schedule_errors(
                        cron,
                        timezone or "UTC",
                        on_missing=on_missing or "shift",
                        on_repeated=on_repeated or "first",
                    )
                )
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
            created = bool(await store.insert_fires(conn, [fire]))
            if created:
                await store.insert_outbox(conn, [out])
                await self._audit(
                    conn,
                    caller,
                    Change(
                        action="schedule.trigger",
                        target_type="schedule",
                        target_id=row.id,
                        workspace_id=row.workspace_id,
                        details={"automation_id": row.automation_id, "fire_id": fid},
                    ),
                )
            stored = await store.fire(conn, fid)
        with log_context(automation_id=row.automation_id, fire_id=fid):
            log.info("manual fire %s", "emitted" if created else "already emitted")
        if created:
            self._on_fires()
            self._on_audit()
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
            created_set = set(await store.insert_fires(conn, list(fires.values())))
            released = []
            for i, fid in enumerate(fid for fid in fires if fid in created_set):
                # created_at is the relay's release time: a backfill never floods executors.
                released.append({**outs[fid], "created_at": now + timedelta(seconds=i / rate)})
            await store.insert_outbox(conn, released)
            await self._audit(
                conn,
                caller,
                Change(
                    action="schedule.backfill",
                    target_type="schedule",
                    target_id=row.id,
                    workspace_id=row.workspace_id,
                    details={
                        "automation_id": row.automation_id,
                        "start_time": start.isoformat(),
                        "end_time": end.isoformat(),
                        "fires_created": str(len(created_set)),
                    },
                ),
            )
        self._on_audit()
        created = len(created_set)
        with log_context(automation_id=row.automation_id):
            log.info(
                "backfill of %s: %d fired, %d already fired", sid, created, len(times) - created
            )
        if created:
            self._on_fires()
        return created, len(times) - created

    async def remove(self, caller: Principal, sid: str) -> None:
        """Delete a schedule (its fires stay as history)."""
        async with self._engine.begin() as conn:
            row = await self._schedule(conn, caller, sid, for_update=True)
            await store.delete_schedules(conn, [row.id], utcnow())
            await self._audit(
                conn,
                caller,
                Change(
                    action="schedule.remove",
                    target_type="schedule",
                    target_id=row.id,
                    workspace_id=row.workspace_id,
                    details={"automation_id": row.automation_id},
                ),
            )
        self._on_audit()
        log.info("schedule %s removed", sid)
