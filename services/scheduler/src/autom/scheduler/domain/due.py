"""What a due schedule fires now: on-time instants, catch-up after downtime, bounds, jitter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autom.schedule import (
    ScheduleError,
    TooManyFiresError,
    jitter_offset,
    matching_times,
    next_fire,
)
from autom.scheduler.domain.config import ScheduleConfig

_US = timedelta(microseconds=1)
_UNKNOWN = object()
# Counting dropped instants of a second-level schedule down for days must stay cheap;
# beyond this the count is a lower bound.
MISSED_COUNT_LIMIT = 100_000

SCHEDULED = "scheduled"
CATCHUP = "catchup"
MANUAL = "manual"
BACKFILL = "backfill"


@dataclass
class DuePlan:
    """The fires to emit for one schedule and its state afterwards."""

    fires: list[tuple[datetime, str]] = field(default_factory=list)
    missed: int = 0
    next_fire_at: datetime | None = None
    due_at: datetime | None = None


def first_fire(config: ScheduleConfig, after: datetime) -> datetime | None:
    """First nominal instant strictly after `after` inside start_at/end_at; None when ended."""
    lower = after
    if config.start_at is not None and config.start_at - _US > lower:
        lower = config.start_at - _US
    try:
        nominal = next_fire(config.spec, lower)
    except ScheduleError:
        return None  # no match within the cron library's horizon: the schedule is over
    if config.end_at is not None and nominal > config.end_at:
        return None
    return nominal


def due_time(schedule_id: str, config: ScheduleConfig, nominal: datetime | None) -> datetime | None:
    """The nominal instant plus its deterministic jitter (bounded by the next nominal one)."""
    if nominal is None or not config.jitter:
        return nominal
    following = first_fire(config, nominal)
    return nominal + jitter_offset(schedule_id, nominal, config.jitter, following)


def _count(config: ScheduleConfig, start: datetime, end: datetime) -> int:
    if end <= start:
        return 0
    try:
        return len(matching_times(config.spec, start, end, limit=MISSED_COUNT_LIMIT))
    except TooManyFiresError:
        return MISSED_COUNT_LIMIT


def _times(config: ScheduleConfig, start: datetime, end: datetime) -> list[datetime]:
    return matching_times(config.spec, start, end, limit=MISSED_COUNT_LIMIT)


def _run(config: ScheduleConfig, first: datetime, end: datetime) -> tuple[list[datetime], Any]:
    """Instants from `first` (a nominal instant) up to `end`, and the first one after end."""
    times = [first]
    following: datetime | None = None
    while True:
        try:
            following = next_fire(config.spec, times[-1])
        except ScheduleError:
            return times, None
        if following > end:
            return times, following
        if len(times) >= MISSED_COUNT_LIMIT:
            raise TooManyFiresError(MISSED_COUNT_LIMIT)
        times.append(following)


def plan_due(
    *,
    schedule_id: str,
    config: ScheduleConfig,
    next_fire_at: datetime,
    fired_count: int,
    now: datetime,
    late_tolerance: timedelta,
    chunk: int = 1000,
    ahead: timedelta = timedelta(0),
) -> DuePlan:
    """Decide what fires for nominal instants in [next_fire_at, now + ahead].

    Instants up to `ahead` in the future are planned now and released at their due
    time by the relay, so a burst of same-second fires costs no computation on time.

    Instants at most `late_tolerance` old fire as scheduled. Older ones were missed
    (scheduler down or far behind): `none` drops them, `latest` fires the newest once
    unless an on-time one fires anyway, `all` fires each; anything older than
    `catchup_window` is dropped. Dropped instants are counted in `missed`.
    """
    plan = DuePlan()
    until = now + ahead
    horizon = until if config.end_at is None else min(until, config.end_at)
    window_start = now - max(config.catchup_window, late_tolerance)
    # The stored next_fire_at is a nominal instant by construction; later ones come from
    # the spec (matching_times is start-exclusive).
    recent: list[datetime] = []
    # The first instant after `now` when the walk ends there: saves one cron evaluation
    # per fire on the hot path.
    following: Any = _UNKNOWN
    try:
        if next_fire_at > horizon:
            pass
        elif next_fire_at <= window_start:
            plan.missed += 1 + _count(config, next_fire_at, min(window_start, horizon))
            if window_start < horizon:
                recent = _times(config, window_start, horizon)
        else:
            recent, after_horizon = _run(config, next_fire_at, horizon)
            if horizon == until and (config.start_at is None or config.start_at <= until):
                following = after_horizon
    except TooManyFiresError:
        # E.g. a per-second schedule with a window of days: keep the newest minute and
        # count the rest as missed (a lower bound).
        plan.missed += MISSED_COUNT_LIMIT
        short = horizon - max(late_tolerance, timedelta(minutes=1))
        recent = _times(config, max(short, next_fire_at), horizon)

    on_time = [t for t in recent if now - t <= late_tolerance]
    late = [t for t in recent if now - t > late_tolerance]
    # Instants due by now, as opposed to planned ahead; only these supersede a catch-up.
    current = [t for t in on_time if t <= now]
    pending: datetime | None = None
    if on_time and config.jitter:
        last_due = due_time(schedule_id, config, on_time[-1])
        if last_due is not None and last_due > until:
            pending = on_time.pop()

    fires: list[tuple[datetime, str]] = []
    if config.catchup == "all":
        if len(late) > chunk:
            # Bounded transactions: the rest stays due and fires on the next pass.
            pending, late, on_time = late[chunk], late[:chunk], []
        fires.extend((t, CATCHUP) for t in late)
    elif config.catchup == "latest" and late and not current:
        fires.append((late[-1], CATCHUP))
        plan.missed += len(late) - 1
    else:
        plan.missed += len(late)
    fires.extend((t, SCHEDULED) for t in on_time)

    ended = False
    if config.max_fires is not None:
        remaining = max(0, config.max_fires - fired_count)
        if len(fires) >= remaining:
            fires, ended = fires[:remaining], True
    plan.fires = fires
    if not ended:
        if pending is not None:
            plan.next_fire_at = pending
        elif following is not _UNKNOWN:
            ends = config.end_at
            plan.next_fire_at = (
                None if following is None or (ends and following > ends) else following
            )
        else:
            plan.next_fire_at = first_fire(config, until)
    plan.due_at = due_time(schedule_id, config, plan.next_fire_at)
    return plan
