"""The scheduler's SQL: each function takes the caller's connection and never commits."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from autom.scheduler import db
from autom.scheduler.domain.model import AutomationChange

log = logging.getLogger(__name__)

TERMINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled", "timed_out", "skipped")
STAGED_KINDS = ("scheduled", "catchup")
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
_CHUNK = 1000

# -- automations: what was last applied, ordered by revision -------------------------------


async def lock_automation(conn: AsyncConnection, automation_id: str) -> None:
    """Serialise changes of one automation across handlers, resyncs and replicas."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"scheduler:{automation_id}"}
    )


async def automation_state(conn: AsyncConnection, automation_id: str) -> Row[Any] | None:
    """The stored revision, status, tombstone and sync stamp of one automation."""
    a = db.automations
    query = select(a.c.revision, a.c.status, a.c.deleted, a.c.sync_generation)
    row = (await conn.execute(query.where(a.c.id == automation_id))).one_or_none()
    return cast(Row[Any] | None, row)


async def next_sync_generation(conn: AsyncConnection) -> int:
    """A new generation for one resync."""
    return int((await conn.execute(db.sync_generations.next_value())).scalar_one())


# The generation of the latest resync started (0 before the first).
_LATEST_GENERATION = text(
    "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
    f" FROM {db.SCHEMA}.{db.sync_generations.name})"
)


def _stamp_statement(latest: bool) -> Any:
    a = db.automations
    generation = _LATEST_GENERATION if latest else bindparam("s_generation")
    return (
        update(a)
        .where(a.c.id == bindparam("s_id"))
        .values(sync_generation=func.greatest(a.c.sync_generation, generation))
    )


def _record_statement(listing: bool, latest: bool) -> Any:
    a = db.automations
    statement = pg_insert(a).values(
        {
            **{c: bindparam(f"r_{c}") for c in (*_RECORDED, "id")},
            "sync_generation": _LATEST_GENERATION if latest else bindparam("r_generation"),
        }
    )
    newer = a.c.revision < statement.excluded.revision
    if listing:
        newer = or_(newer, a.c.revision == statement.excluded.revision)
    return statement.on_conflict_do_update(
        index_elements=[a.c.id],
        set_={
            **{c: statement.excluded[c] for c in _RECORDED},
            "sync_generation": func.greatest(
                a.c.sync_generation, statement.excluded.sync_generation
            ),
        },
        where=newer,
    ).returning(a.c.id)


# What a change records of an automation (besides its id and the resync stamp).
_RECORDED = ("workspace_id", "version", "revision", "status", "deleted")
# Built once per shape (every definitions event runs one): SQLAlchemy builds no statement
# per call. Keyed by (latest resync's generation?) and, for a record, (from a listing?).
_STAMP = {latest: _stamp_statement(latest) for latest in (False, True)}
_RECORD = {
    (listing, latest): _record_statement(listing, latest)
    for listing in (False, True)
    for latest in (False, True)
}


async def stamp(conn: AsyncConnection, automation_id: str, generation: int | None) -> None:
    """Mark an automation seen by a resync of `generation` (None: the latest one started).

    Stamps only grow, so a slower, older resync never un-marks what a newer one saw.
    """
    params: dict[str, Any] = {"s_id": automation_id}
    if generation is not None:
        params["s_generation"] = generation
    await conn.execute(_STAMP[generation is None], params)


async def record_change(
    conn: AsyncConnection, change: AutomationChange, *, listing: bool, generation: int | None
) -> bool:
    """Store a change as the automation's applied state, stamped as `stamp` does; False when
    it is older than the stored one, or as old and not from a listing (then only stamped).

    One statement where the read, the write and the stamp were three round trips.
    """
    params: dict[str, Any] = {
        "r_id": change.automation_id,
        "r_workspace_id": change.workspace_id,
        "r_version": change.version,
        "r_revision": change.revision,
        "r_status": change.status,
        "r_deleted": change.deleted,
    }
    if generation is not None:
        params["r_generation"] = generation
    stored = await conn.execute(_RECORD[listing, generation is None], params)
    if stored.first() is not None:
        return True
    await stamp(conn, change.automation_id, generation)
    return False


async def unstamped(conn: AsyncConnection, generation: int, after: str, limit: int) -> list[str]:
    """Live automations a resync of `generation` did not see, in id order after `after`."""
    a = db.automations
    return list(
        (
            await conn.execute(
                select(a.c.id)
                .where(
                    a.c.sync_generation < generation,
                    a.c.deleted.is_(False),
                    a.c.id > after,
                )
                .order_by(a.c.id)
                .limit(limit)
            )
        ).scalars()
    )


async def mark_deleted(conn: AsyncConnection, automation_id: str) -> None:
    """Keep a tombstone of an automation gone upstream (its revision stays)."""
    a = db.automations
    await conn.execute(
        update(a).where(a.c.id == automation_id).values(deleted=True, status="deleted")
    )


async def orphan_schedule_ids(conn: AsyncConnection, limit: int) -> list[str]:
    """Schedules whose automation the scheduler holds no state for."""
    s, a = db.schedules, db.automations
    known = select(a.c.id).where(a.c.id == s.c.automation_id, a.c.deleted.is_(False))
    return list((await conn.execute(select(s.c.id).where(~known.exists()).limit(limit))).scalars())


# -- schedules ------------------------------------------------------------------------------


async def schedules_of(conn: AsyncConnection, automation_id: str) -> dict[str, Row[Any]]:
    """One automation's schedules by trigger id, locked for update."""
    rows = await conn.execute(_SCHEDULES_OF, {"aid": automation_id})
    return {row.trigger_id: row for row in rows.all()}


_SCHEDULES_OF = (
    select(*db.schedules.c)
    .where(db.schedules.c.automation_id == bindparam("aid"))
    .with_for_update()
)


async def schedule(
    conn: AsyncConnection, schedule_id: str, *, for_update: bool = False
) -> Row[Any] | None:
    """One schedule row."""
    s = db.schedules
    query = select(*s.c).where(s.c.id == schedule_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def delete_schedules(conn: AsyncConnection, schedule_ids: list[str], now: datetime) -> int:
    """Delete schedules and the fires they had planned ahead; their history stays."""
    if not schedule_ids:
        return 0
    await cancel_staged(conn, schedule_ids, now)
    s = db.schedules
    result = await conn.execute(delete(s).where(s.c.id.in_(schedule_ids)))
    return int(result.rowcount or 0)


async def set_enabled(
    conn: AsyncConnection, schedule_ids: list[str], enabled: bool, now: datetime
) -> None:
    """Enable or disable schedules (pause and resume)."""
    if schedule_ids:
        s = db.schedules
        await conn.execute(
            update(s).where(s.c.id.in_(schedule_ids)).values(enabled=enabled, updated_at=now)
        )


@functools.cache
def _upsert_schedule_statement(columns: tuple[str, ...]) -> Any:
    """The upsert of a schedule updating `columns`, built once per set of columns."""
    s = db.schedules
    inserted = dict.fromkeys(("next_fire_at", "due_at", *columns, "id", "created_at"))
    statement = pg_insert(s).values({name: bindparam(name) for name in inserted})
    return statement.on_conflict_do_update(
        index_elements=[s.c.id], set_={name: statement.excluded[name] for name in columns}
    )


async def upsert_schedule(
    conn: AsyncConnection, schedule_id: str, values: dict[str, Any], now: datetime
) -> None:
    """Insert a schedule, or update the given columns of the existing one."""
    await conn.execute(
        _upsert_schedule_statement(tuple(values)),
        {"next_fire_at": None, "due_at": None, **values, "id": schedule_id, "created_at": now},
    )


async def due_schedules(conn: AsyncConnection, until: datetime, limit: int) -> list[Row[Any]]:
    """Enabled schedules due by `until`, earliest first, locked (others' locks skipped)."""
    s = db.schedules
    rows = await conn.execute(
        select(*s.c)
        .where(s.c.enabled.is_(True), s.c.due_at <= until)
        .order_by(s.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.all())


async def earliest_due(conn: AsyncConnection) -> datetime | None:
    """The earliest due time of an enabled schedule."""
    s = db.schedules
    query = select(func.min(s.c.due_at)).where(s.c.enabled.is_(True), s.c.due_at.is_not(None))
    return cast(datetime | None, (await conn.execute(query)).scalar_one_or_none())


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


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


async def insert_fires_bulk(conn: AsyncConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert fire rows as column arrays; returns the ids that were new."""
    if not rows:
        return set()
    names = ("fire_id", "schedule_id", "workspace_id", "scheduled_for", "fired_at", "kind")
    result = await conn.execute(_INSERT_FIRES, _columns(rows, names))
    return set(result.scalars())


async def insert_outbox_bulk(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows as column arrays."""
    if rows:
        names = ("subject", "msg_id", "payload", "created_at")
        await conn.execute(_INSERT_OUTBOX, _columns(rows, names))


async def advance(conn: AsyncConnection, columns: dict[str, list[Any]], now: datetime) -> None:
    """Move each fired schedule's next fire, last fire and counters (column arrays)."""
    await conn.execute(_ADVANCE, {**columns, "now": now})


async def insert_fires(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[str]:
    """Insert fire rows in chunks, skipping existing ones; returns the ids that were new."""
    f = db.fires
    created: list[str] = []
    for chunk in _chunks(rows, _CHUNK):
        result = await conn.execute(
            pg_insert(f).values(chunk).on_conflict_do_nothing().returning(f.c.fire_id)
        )
        created.extend(result.scalars())
    return created


async def insert_outbox(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    """Insert outbox rows in chunks."""
    for chunk in _chunks(rows, _CHUNK):
        await conn.execute(pg_insert(db.outbox).values(chunk))


async def fire(conn: AsyncConnection, fire_id: str) -> Row[Any]:
    """One fire row."""
    f = db.fires
    return (await conn.execute(select(*f.c).where(f.c.fire_id == fire_id))).one()


async def recent_fires(conn: AsyncConnection, schedule_id: str, limit: int) -> list[Row[Any]]:
    """A schedule's latest fires, newest first."""
    f = db.fires
    rows = await conn.execute(
        select(*f.c)
        .where(f.c.schedule_id == schedule_id)
        .order_by(f.c.fired_at.desc(), f.c.scheduled_for.desc())
        .limit(limit)
    )
    return list(rows.all())


async def cancel_staged(conn: AsyncConnection, schedule_ids: list[str], now: datetime) -> None:
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
                    f.c.kind.in_(STAGED_KINDS),
                )
                .returning(f.c.fire_id)
            )
        ).scalars()
    )
    if staged:
        await conn.execute(delete(o).where(o.c.msg_id.in_(staged), o.c.published_at.is_(None)))
        log.info("cancelled %d fire(s) planned ahead", len(staged))


async def give_back_staged(
    conn: AsyncConnection, *, now: datetime, released_before: datetime | None
) -> tuple[list[Row[Any]], dict[str, Row[Any]], int]:
    """Delete unreleased planned fires (future ones, or those due before `released_before`).

    Returns their schedules (locked), each schedule's (first, n) of what was deleted, and
    how many fires were deleted.
    """
    f, s = db.fires, db.schedules
    staged = (
        f.c.published_at.is_(None),
        f.c.fired_at < released_before if released_before is not None else f.c.fired_at > now,
        f.c.kind.in_(STAGED_KINDS),
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
        return [], {}, 0
    rows = list(
        (await conn.execute(select(*s.c).where(s.c.id.in_(list(counts))).with_for_update())).all()
    )
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
    return rows, counts, len(fids)


async def last_nominal(conn: AsyncConnection, schedule_id: str) -> datetime | None:
    """The latest nominal instant a schedule has a scheduled or catch-up fire for."""
    f = db.fires
    query = select(func.max(f.c.scheduled_for)).where(
        f.c.schedule_id == schedule_id, f.c.kind.in_(STAGED_KINDS)
    )
    return cast(datetime | None, (await conn.execute(query)).scalar_one_or_none())


async def rewind(conn: AsyncConnection, schedule_id: str, values: dict[str, Any]) -> None:
    """Set a schedule's next fire and counters back (fires given back)."""
    s = db.schedules
    await conn.execute(update(s).where(s.c.id == schedule_id).values(**values))


async def prune_fires(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` published fires older than cutoff."""
    f = db.fires
    doomed = (
        select(f.c.fire_id)
        .where(f.c.fired_at < cutoff, f.c.published_at.is_not(None))
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(f).where(f.c.fire_id.in_(doomed)))
    return int(result.rowcount or 0)


async def record_run(conn: AsyncConnection, fire_id: str, run_id: str, status: str) -> bool:
    """Attach a run to its fire unless the fire already holds a terminal status."""
    f, s = db.fires, db.schedules
    sid = (
        await conn.execute(
            update(f)
            .where(
                f.c.fire_id == fire_id,
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


async def page_of_schedules(
    conn: AsyncConnection,
    *,
    workspace_id: str,
    automation_id: str,
    enabled_only: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Row[Any]]:
    """Schedules ordered by next fire time (ended and paused last), then id; `sort_at` added."""
    s = db.schedules
    order = func.coalesce(s.c.next_fire_at, literal(_FOREVER))
    query = select(*s.c, order.label("sort_at"))
    if workspace_id != "*":
        query = query.where(s.c.workspace_id == workspace_id)
    if automation_id:
        query = query.where(s.c.automation_id == automation_id)
    if enabled_only:
        query = query.where(s.c.enabled.is_(True), s.c.next_fire_at.is_not(None))
    if after is not None:
        at, last_id = after
        query = query.where(or_(order > at, and_(order == at, s.c.id > last_id)))
    result = await conn.execute(query.order_by(order, s.c.id).limit(limit))
    return cast(list[Row[Any]], list(result.all()))


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
