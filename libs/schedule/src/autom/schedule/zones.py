"""IANA zone lookup and UTC-offset transitions, found through zoneinfo's public API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from autom.schedule.errors import ScheduleError

# Names that resolve on some hosts but denote the host's configuration, not a place.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})

# zoneinfo hides its transition table, so offsets are sampled and changes bisected.
# The closest offset changes in tzdata since 1900 are 4 days apart (modern ones a
# week or more), so 12-hour sampling cannot step over a change-and-revert pair.
_SAMPLE_SECONDS = 12 * 3600
_EPOCH = datetime(1970, 1, 1)
_MIN_YEAR = 1900
_MAX_YEAR = 9998


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of UTC offset at `at` (naive UTC), from `before` to `after`."""

    at: datetime
    before: timedelta
    after: timedelta


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_PLACES


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name` or raise ScheduleError(field="timezone")."""
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone", "time zone is empty; use an IANA name like Europe/Zurich")
    if name not in _known_zones():
        raise ScheduleError(
            "timezone", f"unknown time zone {name!r}; use an IANA name like Europe/Zurich"
        )
    return ZoneInfo(name)


def offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    """UTC offset of `zone` at the naive UTC `instant`."""
    offset = zone.fromutc(instant.replace(tzinfo=zone)).utcoffset()
    assert offset is not None
    return offset


def _offset_seconds(zone: ZoneInfo, ts: int) -> int:
    return int(offset_at(zone, _EPOCH + timedelta(seconds=ts)).total_seconds())


@lru_cache(maxsize=16384)
def year_transitions(key: str, year: int) -> tuple[Transition, ...]:
    """Offset changes at instants in (Jan 1 `year`, Jan 1 `year`+1] UTC."""
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return ()
    zone = ZoneInfo(key)
    start = int((datetime(year, 1, 1) - _EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1) - _EPOCH).total_seconds())
    found: list[Transition] = []
    lo, lo_off = start, _offset_seconds(zone, start)
    while lo < end:
        hi = min(lo + _SAMPLE_SECONDS, end)
        hi_off = _offset_seconds(zone, hi)
        if hi_off != lo_off:
            a, b = lo, hi
            while b - a > 1:
                mid = (a + b) // 2
                if _offset_seconds(zone, mid) == lo_off:
                    a = mid
                else:
                    b = mid
            found.append(
                Transition(
                    at=_EPOCH + timedelta(seconds=b),
                    before=timedelta(seconds=lo_off),
                    after=timedelta(seconds=hi_off),
                )
            )
        lo, lo_off = hi, hi_off
    return tuple(found)


def next_transition(key: str, instant: datetime, until: datetime) -> Transition | None:
    """First offset change strictly after `instant`, if one happens by `until`."""
    for year in range(instant.year, until.year + 1):
        for transition in year_transitions(key, year):
            if transition.at > instant:
                return transition
    return None


def recent_transition(key: str, instant: datetime) -> Transition | None:
    """Last offset change at or before `instant`, looking back about a year at most."""
    for year in (instant.year, instant.year - 1):
        for transition in reversed(year_transitions(key, year)):
            if transition.at <= instant:
                return transition
    return None


def to_utc(naive_utc: datetime) -> datetime:
    """Attach UTC to a naive UTC datetime."""
    return naive_utc.replace(tzinfo=UTC)
