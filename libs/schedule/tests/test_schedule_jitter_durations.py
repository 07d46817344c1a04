from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autom.schedule import jitter_offset, parse_duration

NOMINAL = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)


def test_jitter_is_deterministic_and_zone_independent() -> None:
    a = jitter_offset("sched-1", NOMINAL, timedelta(minutes=5), None)
    b = jitter_offset(
        "sched-1", NOMINAL.astimezone(ZoneInfo("Europe/Zurich")), timedelta(minutes=5), None
    )
    assert a == b
    assert timedelta(0) <= a < timedelta(minutes=5)


def test_jitter_differs_between_schedules_and_fires() -> None:
    offsets = {
        jitter_offset(f"sched-{i}", NOMINAL + timedelta(hours=j), timedelta(hours=1), None)
        for i in range(20)
        for j in range(5)
    }
    assert len(offsets) == 100


def test_jitter_is_capped_by_the_gap_to_the_next_nominal_fire() -> None:
    for i in range(200):
        offset = jitter_offset(
            f"s{i}", NOMINAL, timedelta(hours=1), NOMINAL + timedelta(seconds=10)
        )
        assert timedelta(0) <= offset < timedelta(seconds=10)


def test_jitter_spreads_roughly_uniformly() -> None:
    bound = timedelta(seconds=100)
    values = [jitter_offset(f"s{i}", NOMINAL, bound, None) / bound for i in range(2000)]
    buckets = [sum(1 for v in values if k / 10 <= v < (k + 1) / 10) for k in range(10)]
    assert all(140 <= count <= 260 for count in buckets), buckets


@pytest.mark.parametrize(
    ("max_jitter", "next_nominal"),
    [
        (timedelta(0), None),
        (timedelta(seconds=-5), None),
        (timedelta(minutes=5), NOMINAL),
        (timedelta(minutes=5), NOMINAL - timedelta(seconds=1)),
    ],
)
def test_jitter_is_zero_without_room(max_jitter: timedelta, next_nominal: datetime | None) -> None:
    assert jitter_offset("s", NOMINAL, max_jitter, next_nominal) == timedelta(0)


def test_jitter_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        jitter_offset("s", datetime(2027, 1, 1), timedelta(minutes=1), None)
    with pytest.raises(ValueError):
        jitter_offset("s", NOMINAL, timedelta(minutes=1), datetime(2027, 1, 1))


@settings(max_examples=200, deadline=None)
@given(
    schedule_id=st.text(max_size=20),
    micros=st.integers(0, 10**12),
    gap=st.one_of(st.none(), st.integers(-(10**9), 10**12)),
)
def test_jitter_stays_in_its_interval(schedule_id: str, micros: int, gap: int | None) -> None:
    max_jitter = timedelta(microseconds=micros)
    next_nominal = None if gap is None else NOMINAL + timedelta(microseconds=gap)
    offset = jitter_offset(schedule_id, NOMINAL, max_jitter, next_nominal)
    bound = max_jitter if next_nominal is None else min(max_jitter, next_nominal - NOMINAL)
    assert offset == timedelta(0) or timedelta(0) <= offset < bound


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1h", timedelta(hours=1)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("0s", timedelta(0)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("1m500ms", timedelta(minutes=1, milliseconds=500)),
        (" 10m ", timedelta(minutes=10)),
        ("36h", timedelta(hours=36)),
    ],
)
def test_parse_duration_accepts_unit_strings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5s", "negative"),
        ("-1h30m", "negative"),
        ("5", "invalid"),
        ("0", "invalid"),
        ("abc", "invalid"),
        ("1.5h", "invalid"),
        ("30m1h", "invalid"),
        ("1h 30m", "invalid"),
        ("1hh", "invalid"),
        ("5S", "invalid"),
        ("1w", "invalid"),
        ("h", "invalid"),
        ("5 s", "invalid"),
        ("99999999999999d", "too large"),
    ],
)
def test_parse_duration_rejects_garbage_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.fixed_dictionaries(
        {},
        optional={unit: st.integers(0, 10_000) for unit in ("d", "h", "m", "s", "ms")},
    ).filter(bool)
)
def test_parse_duration_round_trips_generated_strings(parts: dict[str, int]) -> None:
    order = ("d", "h", "m", "s", "ms")
    text = "".join(f"{parts[u]}{u}" for u in order if u in parts)
    scale = {
        "d": timedelta(days=1),
        "h": timedelta(hours=1),
        "m": timedelta(minutes=1),
        "s": timedelta(seconds=1),
        "ms": timedelta(milliseconds=1),
    }
    assert parse_duration(text) == sum((n * scale[u] for u, n in parts.items()), timedelta(0))
