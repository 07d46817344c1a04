"""Fire-time computation: cron matches in local wall time mapped to UTC under a DST policy.

The zone's timeline is walked as segments of constant UTC offset. Inside a segment,
wall time and real time move together, so the first cron match in the segment's
allowed wall range is the next fire. At a spring-forward the skipped wall times fire
once at the transition (shift) or not at all (skip); at a fall-back the repeated wall
times belong to the earlier segment (first), the later one (last) or both. Wildcard
specs behave as skip + both: every real instant whose wall time matches fires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError

from autom.schedule.cron import CompiledCron
from autom.schedule.errors import ScheduleError, TooManyFiresError
from autom.schedule.spec import ScheduleSpec
from autom.schedule.zones import load_zone, next_transition, offset_at, recent_transition

_MICROSECOND = timedelta(microseconds=1)
# Bound on how far wall time and UTC can disagree between two offsets (Samoa moved 24h).
_MAX_OFFSET_SWING = timedelta(days=2)


class _Matches:
    """Memoises the last wall-time query: segment walks often ask again for the same match."""

    __slots__ = ("_cron", "_last")

    def __init__(self, cron: CompiledCron) -> None:
        self._cron = cron
        self._last: tuple[datetime, datetime] | None = None

    def at_or_after(self, wall: datetime) -> datetime:
        if self._last is not None and self._last[0] <= wall <= self._last[1]:
            return self._last[1]
        try:
            found = self._cron.first_at_or_after(wall)
        except (CroniterBadDateError, OverflowError):
            if wall.year > datetime.max.year - 50:
                raise _end_of_time(wall) from None
            raise ScheduleError(
                "cron", f"no fire time within 50 years after local time {wall.isoformat()}"
            ) from None
        self._last = (wall, found)
        return found


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None)


def _next_naive_utc(spec: ScheduleSpec, after: datetime) -> datetime:
    try:
        return _next_naive_utc_unchecked(spec, after)
    except ScheduleError:
        raise
    except (OverflowError, ValueError):
        # datetime ends at 9999-12-31: a search that runs past it has no fire time.
        raise _end_of_time(after) from None


def _end_of_time(after: datetime) -> ScheduleError:
    return ScheduleError(
        "after", f"no fire time between {after.isoformat()} and the end of year 9999"
    )


def _next_naive_utc_unchecked(spec: ScheduleSpec, after: datetime) -> datetime:
    cron = spec._compiled
    key = spec.timezone
    zone = load_zone(key)
    if cron.wildcard:
        shift, repeated = False, "both"
    else:
        shift, repeated = spec.on_missing == "shift", spec.on_repeated
    matches = _Matches(cron)

    offset = offset_at(zone, after)
    segment_start = after
    lowest = after + offset + _MICROSECOND
    previous = recent_transition(key, after)
    if previous is not None and previous.before > offset and repeated == "first":
        # `after` is in the second pass of a repeated hour whose first pass already fired.
        lowest = max(lowest, previous.at + previous.before)

    while True:
        wall = matches.at_or_after(lowest)
        upcoming = next_transition(key, segment_start, wall - offset + _MAX_OFFSET_SWING)
        if upcoming is None:
            return wall - offset
        falls_back = upcoming.after < offset
        highest = upcoming.at + (upcoming.after if falls_back and repeated == "last" else offset)
        if wall < highest:
            return wall - offset
        if shift and upcoming.after > offset:
            skipped = matches.at_or_after(upcoming.at + offset)
            if skipped < upcoming.at + upcoming.after:
                return upcoming.at
        lowest = upcoming.at + (offset if falls_back and repeated == "first" else upcoming.after)
        offset = upcoming.after
        segment_start = upcoming.at


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime:
    """First fire instant strictly after the aware datetime `after`, as an aware UTC datetime."""
    return _next_naive_utc(spec, _require_aware("after", after)).replace(tzinfo=UTC)


def preview(spec: ScheduleSpec, n: int, after: datetime | None = None) -> list[datetime]:
    """The next `n` fire instants after `after` (default: now), as aware UTC datetimes."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    current = _require_aware("after", after) if after is not None else _utcnow()
    result: list[datetime] = []
    for _ in range(n):
        current = _next_naive_utc(spec, current)
        result.append(current.replace(tzinfo=UTC))
    return result


def matching_times(
    spec: ScheduleSpec, start: datetime, end: datetime, *, limit: int = 10_000
) -> list[datetime]:
    """All fire instants t with start < t <= end; raises TooManyFiresError past `limit`."""
    current = _require_aware("start", start)
    stop = _require_aware("end", end)
    result: list[datetime] = []
    while True:
        current = _next_naive_utc(spec, current)
        if current > stop:
            return result
        if len(result) >= limit:
            raise TooManyFiresError(limit)
        result.append(current.replace(tzinfo=UTC))


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
