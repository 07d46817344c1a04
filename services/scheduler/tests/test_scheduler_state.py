"""Schedule state from automation changes: upsert, edit, pause, resume, delete, ordering."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.devstack.eventually import assert_eventually
from autom.scheduler import db
from autom.scheduler.domain.model import AutomationChange
from autom.scheduler.service import SchedulerService
from autom.scheduler.settings import SchedulerSettings

Make = Callable[..., AutomationChange]


async def schedules(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*db.schedules.c))).all()
    return {r.id: r for r in rows}


async def test_created_automation_gets_one_schedule_per_schedule_trigger(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    before = datetime.now(UTC)
    assert await service.apply_change(make_change("*/5 * * * *", timezone="Europe/Zurich"))
    rows = await schedules(engine)
    assert list(rows) == ["auto-1:tick"]
    row = rows["auto-1:tick"]
    assert row.enabled and row.cron == "*/5 * * * *" and row.timezone == "Europe/Zurich"
    assert row.inputs == {"repo": "octo/widgets"} and row.principal == "user:alice"
    assert row.catchup == "latest" and row.catchup_window_s == 3600
    assert before < row.next_fire_at <= before + timedelta(minutes=5)
    assert row.next_fire_at.minute % 5 == 0 and row.due_at == row.next_fire_at


async def test_update_without_timing_change_keeps_next_fire(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *"))
    first = (await schedules(engine))["auto-1:tick"]
    async with engine.begin() as conn:  # pretend the next fire was computed long ago
        await conn.execute(
            sa.update(db.schedules).values(next_fire_at=first.next_fire_at - timedelta(days=1))
        )
    await service.apply_change(make_change("0 9 * * *", version=2, catchup="all"))
    row = (await schedules(engine))["auto-1:tick"]
    assert row.automation_version == 2 and row.catchup == "all"
    assert row.next_fire_at == first.next_fire_at - timedelta(days=1)


async def test_edited_cron_recomputes_next_fire(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *"))
    await service.apply_change(make_change("*/10 * * * * *", version=2))
    row = (await schedules(engine))["auto-1:tick"]
    assert row.cron == "*/10 * * * * *"
    assert row.next_fire_at - datetime.now(UTC) <= timedelta(seconds=10)


async def test_pause_disables_and_resume_counts_from_now(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("* * * * * *"))
    await service.apply_change(make_change("* * * * * *", status="paused"))
    paused = (await schedules(engine))["auto-1:tick"]
    assert not paused.enabled and paused.next_fire_at is None
    await service.apply_change(make_change("* * * * * *"))
    resumed = (await schedules(engine))["auto-1:tick"]
    assert resumed.enabled
    assert resumed.next_fire_at > datetime.now(UTC) - timedelta(seconds=1)


async def test_stale_events_are_ignored(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    assert await service.apply_change(make_change("0 9 * * *", version=2, revision=5))
    assert not await service.apply_change(make_change("0 10 * * *", version=1, revision=4))
    assert not await service.apply_change(make_change("0 10 * * *", version=2, revision=5))
    assert (await schedules(engine))["auto-1:tick"].cron == "0 9 * * *"


async def test_pause_and_resume_of_one_version_are_ordered_by_revision_not_arrival(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    # Pause and resume keep the version; a redelivered, older resume must not undo a pause.
    assert await service.apply_change(make_change("0 9 * * *", revision=1))
    assert await service.apply_change(make_change("0 9 * * *", status="paused", revision=3))
    assert not await service.apply_change(make_change("0 9 * * *", revision=2))
    row = (await schedules(engine))["auto-1:tick"]
    assert not row.enabled and row.next_fire_at is None
    assert await service.apply_change(make_change("0 9 * * *", revision=4))
    assert (await schedules(engine))["auto-1:tick"].enabled


async def test_delete_removes_and_a_late_older_event_does_not_resurrect(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *", version=1, revision=1))
    await service.apply_change(
        make_change(None, version=1, deleted=True, status="deleted", revision=2)
    )
    assert await schedules(engine) == {}
    assert not await service.apply_change(make_change("0 9 * * *", version=1, revision=1))
    assert await schedules(engine) == {}


async def test_removed_trigger_removes_its_schedule(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *"))
    await service.apply_change(make_change(None, version=2))
    assert await schedules(engine) == {}


async def test_sync_removes_schedules_of_unlisted_automations(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *", automation_id="gone"))
    generation = await service.begin_sync()
    assert await service.apply_listed([make_change("0 9 * * *", automation_id="kept")], generation)
    # An event applied while the listing runs keeps its automation, wherever the cursor is.
    await service.apply_change(make_change("0 9 * * *", automation_id="born-meanwhile"))
    assert await service.sweep(generation) == 1
    assert sorted(await schedules(engine)) == ["born-meanwhile:tick", "kept:tick"]
    # The tombstone keeps a late event of the swept automation from resurrecting it.
    assert not await service.apply_change(
        make_change("0 9 * * *", automation_id="gone", revision=1)
    )


async def test_due_schedule_fires_into_the_outbox_exactly_once(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("0 9 * * *"))
    nominal = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    async with engine.begin() as conn:
        await conn.execute(sa.update(db.schedules).values(next_fire_at=nominal, due_at=nominal))
    assert await service.fire_due() == 1
    assert await service.fire_due() == 0
    async with engine.connect() as conn:
        fires = (await conn.execute(sa.select(*db.fires.c))).all()
        outbox = (await conn.execute(sa.select(*db.outbox.c))).all()
    assert [f.scheduled_for for f in fires] == [nominal]
    assert [o.msg_id for o in outbox] == [fires[0].fire_id]
    assert outbox[0].subject == "automations.fires.default"
    row = (await schedules(engine))["auto-1:tick"]
    assert row.last_fired_at == nominal and row.fired_count == 1
    assert row.next_fire_at > nominal


async def planned(service: SchedulerService) -> None:
    assert await service.fire_due()


async def staged_state(engine: AsyncEngine) -> tuple[list[Any], list[Any], Any]:
    async with engine.connect() as conn:
        fires = (await conn.execute(sa.select(*db.fires.c))).all()
        outbox = (await conn.execute(sa.select(*db.outbox.c))).all()
    return list(fires), list(outbox), (await schedules(engine))["auto-1:tick"]


async def test_a_fire_planned_ahead_is_handed_over_shortly_before_its_time(
    service: SchedulerService, engine: AsyncEngine, make_change: Make, settings: SchedulerSettings
) -> None:
    await service.apply_change(make_change("* * * * * *"))
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    async with engine.begin() as conn:
        await conn.execute(sa.update(db.schedules).values(next_fire_at=ahead, due_at=ahead))
    await assert_eventually(lambda: planned(service), timeout=5)
    fires, outbox, _ = await staged_state(engine)
    # The event says when to run (fired_at); the relay releases it up to the handover before.
    assert [f.fired_at for f in fires] == [ahead]
    handover = timedelta(seconds=settings.scheduler_handover_s)
    assert handover > timedelta(0)
    assert ahead - handover <= outbox[0].created_at < ahead


async def test_fires_planned_ahead_are_given_back_on_stop_and_cancelled_on_pause(
    engine: AsyncEngine, make_change: Make, settings: SchedulerSettings
) -> None:
    # Released at their nominal time (no handover): they stay staged until then.
    service = SchedulerService(engine, settings.model_copy(update={"scheduler_handover_s": 0.0}))
    await service.apply_change(make_change("* * * * * *"))
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    async with engine.begin() as conn:
        await conn.execute(sa.update(db.schedules).values(next_fire_at=ahead, due_at=ahead))
    # Plan it when it is within the lead, released at its nominal time.
    await assert_eventually(lambda: planned(service), timeout=5)
    fires, outbox, row = await staged_state(engine)
    assert [f.scheduled_for for f in fires] == [ahead] and fires[0].fired_at == ahead
    assert outbox[0].created_at == ahead and row.next_fire_at == ahead + timedelta(seconds=1)

    assert await service.unstage() == 1
    fires, outbox, row = await staged_state(engine)
    assert (fires, outbox) == ([], [])
    assert row.next_fire_at == ahead and row.fired_count == 0

    await assert_eventually(lambda: planned(service), timeout=5)
    await service.apply_change(make_change("* * * * * *", status="paused"))
    fires, outbox, row = await staged_state(engine)
    assert (fires, outbox) == ([], []) and not row.enabled


async def _one_fire(service: SchedulerService, engine: AsyncEngine, make_change: Make) -> str:
    """Fire one daily schedule now (as if due a second ago); its fire id."""
    await service.apply_change(make_change("0 9 * * *"))
    nominal = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    async with engine.begin() as conn:
        await conn.execute(sa.update(db.schedules).values(next_fire_at=nominal, due_at=nominal))
    await service.fire_due()
    return f"auto-1:tick:{nominal.strftime('%Y-%m-%dT%H:%M:%S')}Z"


async def test_run_events_annotate_fires_and_never_regress(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    fid = await _one_fire(service, engine, make_change)
    assert await service.record_run(fid, "run-1", "skipped")
    assert not await service.record_run(fid, "run-1", "running")  # late, older event
    assert not await service.record_run(fid, "run-1", "skipped")  # redelivered
    assert not await service.record_run("unknown", "run-2", "succeeded")
    async with engine.connect() as conn:
        fire = (await conn.execute(sa.select(*db.fires.c))).one()
    assert (fire.fire_id, fire.run_id, fire.run_status) == (fid, "run-1", "skipped")
    assert (await schedules(engine))["auto-1:tick"].skipped_count == 1


async def test_run_events_recorded_together_each_get_their_own_answer(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    fid = await _one_fire(service, engine, make_change)
    # Handled at once, as a consumer with many in flight does: one commit holds them all.
    answers = await asyncio.gather(
        service.record_run("unknown", "run-9", "succeeded"),
        service.record_run(fid, "run-1", "running"),
        service.record_run(fid, "run-1", "skipped"),
        service.record_run(fid, "run-1", "running"),  # late: never undoes the terminal one
    )
    assert answers == [False, True, True, False]
    async with engine.connect() as conn:
        fire = (await conn.execute(sa.select(*db.fires.c))).one()
    assert (fire.fire_id, fire.run_id, fire.run_status) == (fid, "run-1", "skipped")
    assert (await schedules(engine))["auto-1:tick"].skipped_count == 1


async def test_fires_never_released_while_every_replica_was_down_follow_catchup(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    await service.apply_change(make_change("* * * * * *", catchup="none"))
    await assert_eventually(lambda: planned(service), timeout=5)
    fires, _, _ = await staged_state(engine)
    # Pretend they were planned an hour ago and no relay ever ran.
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(db.fires).values(
                fired_at=sa.text("fired_at - interval '1h'"),
                scheduled_for=sa.text("scheduled_for - interval '1h'"),
            )
        )
    assert await service.unstage(stale=True) == len(fires)
    assert (await staged_state(engine))[:2] == ([], [])
    await service.fire_due()
    row = (await schedules(engine))["auto-1:tick"]
    assert row.missed_count >= len(fires)


async def test_a_slower_older_resync_never_unmarks_what_a_newer_one_listed(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    a = make_change("0 9 * * *", automation_id="a")
    b = make_change("0 9 * * *", automation_id="b")
    await service.apply_change(a)
    await service.apply_change(b)
    older, newer = await service.begin_sync(), await service.begin_sync()
    await service.apply_listed([a, b], newer)
    await service.apply_listed([a], older)  # the older resync is still on its way
    assert await service.sweep(newer) == 0
    assert sorted(await schedules(engine)) == ["a:tick", "b:tick"]


async def test_a_listing_restores_what_a_sweep_removed_at_the_same_revision(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    listed = make_change("0 9 * * *", automation_id="back", revision=7)
    await service.apply_change(listed)
    assert await service.sweep(await service.begin_sync()) == 1
    assert await schedules(engine) == {}
    # A real delete would carry a newer revision; the same revision listed means it lives.
    generation = await service.begin_sync()
    assert await service.apply_listed([listed], generation) == 1
    assert list(await schedules(engine)) == ["back:tick"]


async def test_an_event_during_a_resync_keeps_its_automation_from_the_sweep_even_when_stale(
    service: SchedulerService, engine: AsyncEngine, make_change: Make
) -> None:
    fresh = make_change("0 9 * * *", automation_id="fresh", revision=20)
    stale = make_change("0 9 * * *", automation_id="stale", revision=30)
    await service.apply_change(stale)
    generation = await service.begin_sync()  # its listing holds neither (they came after)
    assert await service.apply_change(fresh)
    # An older event of an automation already applied: ignored, yet seen by this resync.
    assert not await service.apply_change(
        make_change("0 10 * * *", automation_id="stale", revision=29)
    )
    assert await service.sweep(generation) == 0
    rows = await schedules(engine)
    assert sorted(rows) == ["fresh:tick", "stale:tick"]
    assert rows["stale:tick"].cron == "0 9 * * *"
