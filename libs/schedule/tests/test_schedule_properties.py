"""Property tests: next_fire against a brute-force reference that walks real time."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from autom.schedule import ScheduleError, ScheduleSpec, matching_times, next_fire, preview

TRICKY_ZONES = [
    "Europe/Zurich",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
    "America/Havana",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Europe/Dublin",
    "Antarctica/Troll",
    "America/St_Johns",
]

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


@cache
def transitions(zone_name: str) -> list[datetime]:
    """Offset changes in 2024-2030, found by daily sampling and bisection to the minute."""
    zone = ZoneInfo(zone_name)

    def offset(t: datetime) -> timedelta | None:
        return t.astimezone(zone).utcoffset()

    found = []
    t = datetime(2024, 1, 1, tzinfo=UTC)
    while t.year < 2031:
        nxt = t + timedelta(days=1)
        if offset(t) != offset(nxt):
            lo, hi = t, nxt
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    mid = lo + MINUTE
                if offset(mid) == offset(lo):
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t = nxt
    return found


# --- an independent cron matcher for the generated subset --------------------


def _expand(field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            a, b = body.split("-")
            start, stop = int(a), int(b)
        else:
            start = stop = int(body)
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Ref:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool
    wildcard: bool

    @classmethod
    def parse(cls, cron: str) -> "Ref":
        fields = cron.split()
        seconds = _expand(fields[0], 0, 59) if len(fields) == 6 else frozenset({0})
        minute, hour, dom, month, dow = fields[-5:]
        return cls(
            seconds=seconds,
            minutes=_expand(minute, 0, 59),
            hours=_expand(hour, 0, 23),
            days=_expand(dom, 1, 31),
            months=_expand(month, 1, 12),
            weekdays=frozenset(d % 7 for d in _expand(dow, 0, 7)),
            days_restricted=dom != "*",
            weekdays_restricted=dow != "*",
            wildcard=minute.startswith("*") or hour.startswith("*"),
        )

    def matches_minute(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        day_ok = wall.day in self.days
        weekday_ok = (wall.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def matches(self, wall: datetime) -> bool:
        return wall.second in self.seconds and self.matches_minute(wall)


def is_fire(spec: ScheduleSpec, ref: Ref, t: datetime) -> bool:
    """Whether the real instant `t` (aware UTC) fires, by the documented policy."""
    zone = ZoneInfo(spec.timezone)
    local = t.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    missing, repeated = ("skip", "both") if ref.wildcard else (spec.on_missing, spec.on_repeated)
    if ref.matches(wall) and wall.microsecond == 0:
        first = wall.replace(tzinfo=zone, fold=0).utcoffset()
        second = wall.replace(tzinfo=zone, fold=1).utcoffset()
        if first == second or repeated == "both":
            return True
        return (local.fold == 0) == (repeated == "first")
    if missing == "shift":
        before = (t - timedelta(microseconds=1)).astimezone(zone).utcoffset()
        after = local.utcoffset()
        assert before is not None and after is not None
        if before < after:  # `t` ends a gap; do any of its skipped wall times match?
            step = SECOND if len(spec.cron.split()) == 6 else MINUTE
            gap = (t.replace(tzinfo=None) + before, t.replace(tzinfo=None) + after)
            w = gap[0]
            while w < gap[1]:
                if ref.matches(w):
                    return True
                w += step
    return False


def reference_next(
    spec: ScheduleSpec, ref: Ref, after: datetime, horizon: datetime
) -> datetime | None:
    """First firing instant in (after, horizon] found by walking real minutes (and seconds)."""
    zone = ZoneInfo(spec.timezone)
    minute = after.replace(second=0, microsecond=0)
    previous_offset = (minute - MINUTE).astimezone(zone).utcoffset()
    while minute <= horizon:
        local = minute.astimezone(zone)
        wall = local.replace(tzinfo=None)
        offset_changed = local.utcoffset() != previous_offset
        previous_offset = local.utcoffset()
        # Only instants on whole seconds can fire; check candidates inside this minute.
        if ref.matches_minute(wall) or (offset_changed and is_fire(spec, ref, minute)):
            for second in sorted(ref.seconds | {0}):
                t = minute + timedelta(seconds=second)
                if after < t <= horizon and is_fire(spec, ref, t):
                    return t
        minute += MINUTE
    return None


# --- strategies --------------------------------------------------------------


def _field(low: int, high: int, *, hot: list[int] | None = None) -> st.SearchStrategy[str]:
    value = st.sampled_from(hot) if hot else st.integers(low, high)
    step = st.integers(2, max(2, (high - low) // 2))
    rng = st.tuples(value, st.integers(0, 6)).map(lambda p: (p[0], min(high, p[0] + p[1])))
    return st.one_of(
        st.just("*"),
        step.map(lambda s: f"*/{s}"),
        value.map(str),
        rng.map(lambda r: f"{r[0]}-{r[1]}"),
        st.tuples(rng, step).map(lambda p: f"{p[0][0]}-{p[0][1]}/{p[1]}"),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda vs: ",".join(map(str, sorted(vs)))
        ),
    )


# Hours and minutes near common transition times are over-represented.
_HOT_HOURS = [0, 1, 2, 3, 23, 22, 12]
_HOT_MINUTES = [0, 15, 30, 45, 59, 1]

cron_specs = st.one_of(
    st.tuples(
        _field(0, 59, hot=_HOT_MINUTES),
        _field(0, 23, hot=_HOT_HOURS),
        st.one_of(st.just("*"), st.just("*"), _field(1, 28)),
        st.one_of(st.just("*"), st.just("*"), st.just("*"), _field(1, 12)),
        st.one_of(st.just("*"), st.just("*"), st.integers(0, 7).map(str), st.just("1-5")),
    ).map(" ".join),
    # Seconds specs: either every few seconds (wildcard) or a fixed minute and hour.
    st.tuples(
        _field(0, 59, hot=[0, 30, 59]),
        st.one_of(st.just("*"), st.just("*/7"), st.sampled_from(["0", "30", "59"])),
        st.one_of(st.just("*"), st.sampled_from(["0", "1", "2", "3", "23"])),
    ).map(lambda f: f"{f[0]} {f[1]} {f[2]} * * *"),
    st.sampled_from(["@hourly", "@daily", "@midnight", "@weekly", "@monthly"]),
)


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    """Mostly instants within a day or two of a transition, sometimes exactly on it."""
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC))
        )
    base = draw(st.sampled_from(transitions(zone_name) or [datetime(2027, 3, 28, tzinfo=UTC)]))
    minutes = draw(st.one_of(st.integers(-36 * 60, 12 * 60), st.integers(-90, 90)))
    seconds = draw(st.sampled_from([0, 0, 0, 1, 30, 59]))
    micros = draw(st.sampled_from([0, 0, 0, 1, 999_999]))
    return base + timedelta(minutes=minutes, seconds=seconds, microseconds=micros)


@st.composite
def cases(draw: st.DrawFn) -> tuple[ScheduleSpec, datetime]:
    zone = draw(st.sampled_from(TRICKY_ZONES))
    cron = draw(cron_specs)
    on_missing = draw(st.sampled_from(["shift", "skip"]))
    on_repeated = draw(st.sampled_from(["first", "last", "both"]))
    try:
        spec = ScheduleSpec(cron, zone, on_missing, on_repeated)  # type: ignore[arg-type]
    except ScheduleError:
        assume(False)
        raise
    return spec, draw(instants(zone))


MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}


@st.composite
def dst_cases(draw: st.DrawFn) -> tuple[ScheduleSpec, datetime]:
    """Specs whose hour field hits the wall hours a transition skips or repeats."""
    zone_name = draw(st.sampled_from([z for z in TRICKY_ZONES if transitions(z)]))
    zone = ZoneInfo(zone_name)
    at = draw(st.sampled_from(transitions(zone_name)))
    offsets = [
        (at - timedelta(microseconds=1)).astimezone(zone).utcoffset(),
        at.astimezone(zone).utcoffset(),
    ]
    low = at.replace(tzinfo=None) + min(o for o in offsets if o is not None)
    high = at.replace(tzinfo=None) + max(o for o in offsets if o is not None)
    hours = sorted(
        {
            (low + timedelta(minutes=m)).hour
            for m in range(-60, int((high - low).total_seconds() // 60) + 61, 30)
        }
    )
    hour = draw(st.sampled_from(hours))
    hour_field = draw(
        st.sampled_from([str(hour), f"{hour},{(hour + 1) % 24}", f"{max(0, hour - 1)}-{hour}", "*"])
    )
    minute_field = draw(
        st.one_of(
            st.sampled_from(["0", "30", "15", "45", "59", "0,30", "10-20", "0-59/20", "*/30"]),
            st.integers(0, 59).map(str),
        )
    )
    cron = f"{minute_field} {hour_field} * * *"
    if draw(st.integers(0, 4)) == 0:
        cron = f"{draw(st.sampled_from(['0', '30', '*/20']))} {cron}"
    on_missing = draw(st.sampled_from(["shift", "skip"]))
    on_repeated = draw(st.sampled_from(["first", "last", "both"]))
    spec = ScheduleSpec(cron, zone_name, on_missing, on_repeated)  # type: ignore[arg-type]
    minutes = draw(st.one_of(st.integers(-26 * 60, 120), st.integers(-150, 150)))
    seconds = draw(st.sampled_from([0, 0, 1, 59]))
    return spec, at + timedelta(minutes=minutes, seconds=seconds)


def _ref(spec: ScheduleSpec) -> Ref:
    return Ref.parse(MACROS.get(spec.cron, spec.cron))


HORIZON = timedelta(hours=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_next_fire_equals_brute_force_reference(case: tuple[ScheduleSpec, datetime]) -> None:
    check_against_reference(*case)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dst_cases())
def test_specs_aimed_at_transitions_equal_brute_force_reference(
    case: tuple[ScheduleSpec, datetime],
) -> None:
    check_against_reference(*case)


def check_against_reference(spec: ScheduleSpec, after: datetime) -> None:
    ref = _ref(spec)
    current = after
    for _ in range(3):
        result = next_fire(spec, current)
        assert result > current
        assert result.tzinfo is UTC
        assert is_fire(spec, ref, result), (spec, current, result)
        expected = reference_next(spec, ref, current, min(result, current + HORIZON))
        if result <= current + HORIZON:
            assert expected == result, (spec, current, result, expected)
        else:
            assert expected is None, (spec, current, result, expected)
        current = result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_results_are_real_local_times_and_monotone(case: tuple[ScheduleSpec, datetime]) -> None:
    spec, after = case
    ref = _ref(spec)
    zone = ZoneInfo(spec.timezone)
    results = preview(spec, 6, after)
    assert all(a < b for a, b in zip([after, *results], results, strict=False))
    for t in results:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        # The wall time exists (is not inside a gap) and round-trips to the same instant.
        assert wall.replace(tzinfo=zone, fold=local.fold).astimezone(UTC) == t
        if ref.wildcard or spec.on_missing == "skip":
            assert ref.matches(wall), (spec, t, wall)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), hours=st.integers(1, 30))
def test_matching_times_agrees_with_successive_next_fire(
    case: tuple[ScheduleSpec, datetime], hours: int
) -> None:
    spec, start = case
    end = start + timedelta(hours=hours)
    try:
        got = matching_times(spec, start, end, limit=5000)
    except ValueError:
        return
    expected: list[datetime] = []
    current = start
    while (current := next_fire(spec, current)) <= end:
        expected.append(current)
    assert got == expected
