from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from autom.schedule import (
    ScheduleSpec,
    TooManyFiresError,
    matching_times,
    next_fire,
    preview,
)


def utc(text: str) -> datetime:
    """Parse "YYYY-MM-DDTHH:MM[:SS]Z" into an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def fires(spec: ScheduleSpec, after: str, n: int) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in preview(spec, n, utc(after))]


# Transitions used below (2027):
#   Europe/Zurich        Mar 28 01:00Z  02:00 CET   -> 03:00 CEST   Oct 31 01:00Z  03:00 -> 02:00
#   America/New_York     Mar 14 07:00Z  02:00 EST   -> 03:00 EDT    Nov  7 06:00Z  02:00 -> 01:00
#   Australia/Lord_Howe  Oct  3 (15:30Z Oct 2) 02:00 +1030 -> 02:30 +11
#                        Apr  4 (15:00Z Apr 3) 02:00 +11   -> 01:30 +1030
#   America/Santiago     Sep  5 04:00Z  Sat 24:00 -04 -> Sun 01:00 -03
#                        Apr  4 03:00Z  Sun 00:00 -03 -> Sat 23:00 -04
FIXED_VECTORS = [
    # Spring-forward gap, shift: once at the first valid instant after the gap.
    (
        "30 2 * * *",
        "Europe/Zurich",
        "shift",
        "first",
        "2027-03-27T12:00Z",
        ["2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"],
    ),
    (
        "30 2 * * *",
        "Europe/Zurich",
        "skip",
        "first",
        "2027-03-27T12:00Z",
        ["2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z"],
    ),
    # Several gap matches and the first valid wall time itself collapse into one fire.
    (
        "0,30 2,3 * * *",
        "Europe/Zurich",
        "shift",
        "first",
        "2027-03-28T00:00Z",
        ["2027-03-28T01:00:00Z", "2027-03-28T01:30:00Z", "2027-03-29T00:00:00Z"],
    ),
    # Fall-back repeated hour.
    (
        "30 2 * * *",
        "Europe/Zurich",
        "shift",
        "first",
        "2027-10-30T12:00Z",
        ["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"],
    ),
    (
        "30 2 * * *",
        "Europe/Zurich",
        "shift",
        "last",
        "2027-10-30T12:00Z",
        ["2027-10-31T01:30:00Z", "2027-11-01T01:30:00Z"],
    ),
    (
        "30 2 * * *",
        "Europe/Zurich",
        "shift",
        "both",
        "2027-10-30T12:00Z",
        ["2027-10-31T00:30:00Z", "2027-10-31T01:30:00Z", "2027-11-01T01:30:00Z"],
    ),
    (
        "0,30 2 * * *",
        "Europe/Zurich",
        "shift",
        "both",
        "2027-10-30T23:00Z",
        [
            "2027-10-31T00:00:00Z",
            "2027-10-31T00:30:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T01:30:00Z",
            "2027-11-01T01:00:00Z",
        ],
    ),
    # New York.
    (
        "30 2 * * *",
        "America/New_York",
        "shift",
        "first",
        "2027-03-13T12:00Z",
        ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"],
    ),
    (
        "30 2 * * *",
        "America/New_York",
        "skip",
        "first",
        "2027-03-13T12:00Z",
        ["2027-03-15T06:30:00Z"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "shift",
        "first",
        "2027-11-06T12:00Z",
        ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "shift",
        "last",
        "2027-11-06T12:00Z",
        ["2027-11-07T06:30:00Z", "2027-11-08T06:30:00Z"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "shift",
        "both",
        "2027-11-06T12:00Z",
        ["2027-11-07T05:30:00Z", "2027-11-07T06:30:00Z", "2027-11-08T06:30:00Z"],
    ),
    (
        "0 9 * * 1-5",
        "America/New_York",
        "shift",
        "first",
        "2027-03-12T12:00Z",
        ["2027-03-12T14:00:00Z", "2027-03-15T13:00:00Z"],
    ),
    # Lord Howe: 30-minute shifts.
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "shift",
        "first",
        "2027-10-02T00:00Z",
        ["2027-10-02T15:30:00Z", "2027-10-03T15:15:00Z"],
    ),
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "skip",
        "first",
        "2027-10-02T00:00Z",
        ["2027-10-03T15:15:00Z"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "shift",
        "first",
        "2027-04-03T00:00Z",
        ["2027-04-03T14:45:00Z", "2027-04-04T15:15:00Z"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "shift",
        "last",
        "2027-04-03T00:00Z",
        ["2027-04-03T15:15:00Z", "2027-04-04T15:15:00Z"],
    ),
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "shift",
        "both",
        "2027-04-03T00:00Z",
        ["2027-04-03T14:45:00Z", "2027-04-03T15:15:00Z", "2027-04-04T15:15:00Z"],
    ),
    # 01:15 only exists before the fall-back repeated span starts: not repeated.
    (
        "15 1 * * *",
        "Australia/Lord_Howe",
        "shift",
        "last",
        "2027-04-03T00:00Z",
        ["2027-04-03T14:15:00Z", "2027-04-04T14:45:00Z"],
    ),
    # Santiago: the gap is local midnight, the repeated hour is Saturday 23:00.
    (
        "0 0 * * *",
        "America/Santiago",
        "shift",
        "first",
        "2027-09-04T12:00Z",
        ["2027-09-05T04:00:00Z", "2027-09-06T03:00:00Z"],
    ),
    (
        "0 0 * * *",
        "America/Santiago",
        "skip",
        "first",
        "2027-09-04T12:00Z",
        ["2027-09-06T03:00:00Z"],
    ),
    ("@daily", "America/Santiago", "shift", "first", "2027-09-04T12:00Z", ["2027-09-05T04:00:00Z"]),
    (
        "30 23 * * *",
        "America/Santiago",
        "shift",
        "first",
        "2027-04-03T12:00Z",
        ["2027-04-04T02:30:00Z", "2027-04-05T03:30:00Z"],
    ),
    (
        "30 23 * * *",
        "America/Santiago",
        "shift",
        "last",
        "2027-04-03T12:00Z",
        ["2027-04-04T03:30:00Z", "2027-04-05T03:30:00Z"],
    ),
    (
        "30 23 * * *",
        "America/Santiago",
        "shift",
        "both",
        "2027-04-03T12:00Z",
        ["2027-04-04T02:30:00Z", "2027-04-04T03:30:00Z"],
    ),
    (
        "0 0 * * *",
        "America/Santiago",
        "shift",
        "first",
        "2027-04-03T12:00Z",
        ["2027-04-04T04:00:00Z", "2027-04-05T04:00:00Z"],
    ),
    # Kolkata: no DST, half-hour offset.
    (
        "30 9 * * *",
        "Asia/Kolkata",
        "shift",
        "first",
        "2027-03-28T00:00Z",
        ["2027-03-28T04:00:00Z", "2027-03-29T04:00:00Z"],
    ),
    (
        "0 0 29 2 *",
        "Asia/Kolkata",
        "skip",
        "last",
        "2027-01-01T00:00Z",
        ["2028-02-28T18:30:00Z", "2032-02-28T18:30:00Z"],
    ),
    # Fixed seconds spec in a gap shifts like any fixed spec.
    (
        "*/10 30 2 * * *",
        "America/New_York",
        "shift",
        "first",
        "2027-03-14T06:00Z",
        ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z", "2027-03-15T06:30:10Z"],
    ),
]


@pytest.mark.parametrize(
    ("cron", "zone", "on_missing", "on_repeated", "after", "expected"), FIXED_VECTORS
)
def test_fixed_schedules_follow_the_dst_policy(
    cron: str, zone: str, on_missing: str, on_repeated: str, after: str, expected: list[str]
) -> None:
    spec = ScheduleSpec(cron, zone, on_missing, on_repeated)  # type: ignore[arg-type]
    assert fires(spec, after, len(expected)) == expected


WILDCARD_VECTORS = [
    # Both passes of the repeated hour fire; nothing fires in the gap.
    (
        "*/30 * * * *",
        "Europe/Zurich",
        "2027-10-31T00:00Z",
        [
            "2027-10-31T00:30:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T01:30:00Z",
            "2027-10-31T02:00:00Z",
        ],
    ),
    (
        "*/30 * * * *",
        "Europe/Zurich",
        "2027-03-28T00:00Z",
        ["2027-03-28T00:30:00Z", "2027-03-28T01:00:00Z", "2027-03-28T01:30:00Z"],
    ),
    (
        "@hourly",
        "Europe/Zurich",
        "2027-03-28T00:00Z",
        ["2027-03-28T01:00:00Z", "2027-03-28T02:00:00Z"],
    ),
    (
        "0 */2 * * *",
        "Europe/Zurich",
        "2027-10-30T21:00Z",
        [
            "2027-10-30T22:00:00Z",
            "2027-10-31T00:00:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T03:00:00Z",
        ],
    ),
    (
        "15 * * * *",
        "America/New_York",
        "2027-11-07T04:00Z",
        [
            "2027-11-07T04:15:00Z",
            "2027-11-07T05:15:00Z",
            "2027-11-07T06:15:00Z",
            "2027-11-07T07:15:00Z",
        ],
    ),
    (
        "30 * * * *",
        "America/New_York",
        "2027-03-14T06:00Z",
        ["2027-03-14T06:30:00Z", "2027-03-14T07:30:00Z"],
    ),
    (
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2027-10-02T15:00Z",
        ["2027-10-02T15:15:00Z", "2027-10-02T15:30:00Z", "2027-10-02T15:45:00Z"],
    ),
    (
        "*/15 * * * *",
        "Australia/Lord_Howe",
        "2027-04-03T14:30Z",
        [
            "2027-04-03T14:45:00Z",
            "2027-04-03T15:00:00Z",
            "2027-04-03T15:15:00Z",
            "2027-04-03T15:30:00Z",
        ],
    ),
    (
        "0 * * * *",
        "America/Santiago",
        "2027-04-04T01:30Z",
        ["2027-04-04T02:00:00Z", "2027-04-04T03:00:00Z", "2027-04-04T04:00:00Z"],
    ),
    (
        "0 * * * *",
        "America/Santiago",
        "2027-09-05T03:30Z",
        ["2027-09-05T04:00:00Z", "2027-09-05T05:00:00Z"],
    ),
    (
        "*/2 * * * * *",
        "Europe/Zurich",
        "2027-03-28T00:59:57Z",
        ["2027-03-28T00:59:58Z", "2027-03-28T01:00:00Z", "2027-03-28T01:00:02Z"],
    ),
    (
        "*/20 * * * * *",
        "America/New_York",
        "2027-11-07T05:59:30Z",
        ["2027-11-07T05:59:40Z", "2027-11-07T06:00:00Z", "2027-11-07T06:00:20Z"],
    ),
]


@pytest.mark.parametrize(("cron", "zone", "after", "expected"), WILDCARD_VECTORS)
@pytest.mark.parametrize("policy", [("shift", "first"), ("skip", "last"), ("shift", "both")])
def test_wildcard_schedules_run_in_real_time_whatever_the_policy(
    cron: str, zone: str, after: str, expected: list[str], policy: tuple[str, str]
) -> None:
    spec = ScheduleSpec(cron, zone, *policy)  # type: ignore[arg-type]
    assert fires(spec, after, len(expected)) == expected


def test_a_whole_skipped_day_shifts_fixed_fires_to_the_next_valid_instant() -> None:
    # Pacific/Apia skipped 2011-12-30: 23:59:59 -10 on the 29th was followed by 00:00 +14
    # on the 31st (2011-12-30T10:00Z).
    after = utc("2011-12-29T00:00Z")
    shift = ScheduleSpec("0 12 * * *", "Pacific/Apia")
    skip = ScheduleSpec("0 12 * * *", "Pacific/Apia", on_missing="skip")
    assert fires(shift, "2011-12-29T00:00Z", 3) == [
        "2011-12-29T22:00:00Z",
        "2011-12-30T10:00:00Z",
        "2011-12-30T22:00:00Z",
    ]
    assert preview(skip, 2, after) == [utc("2011-12-29T22:00Z"), utc("2011-12-30T22:00Z")]


def test_wildcard_fall_back_hour_fires_in_both_passes_over_a_whole_day() -> None:
    spec = ScheduleSpec("0 * * * *", "Europe/Zurich")
    day = matching_times(spec, utc("2027-10-30T22:00Z"), utc("2027-10-31T23:00Z"))
    assert len(day) == 25
    spring = matching_times(spec, utc("2027-03-27T23:00Z"), utc("2027-03-28T22:00Z"))
    assert len(spring) == 23


def test_after_exactly_on_a_fire_returns_the_next_one() -> None:
    spec = ScheduleSpec("0 9 * * *", "Europe/Zurich")
    assert next_fire(spec, utc("2027-06-01T07:00Z")) == utc("2027-06-02T07:00Z")
    just_before = utc("2027-06-01T07:00Z") - timedelta(microseconds=1)
    assert next_fire(spec, just_before) == utc("2027-06-01T07:00Z")


def test_after_on_a_shifted_fire_does_not_fire_it_again() -> None:
    spec = ScheduleSpec("30 2 * * *", "Europe/Zurich")
    assert next_fire(spec, utc("2027-03-28T01:00Z")) == utc("2027-03-29T00:30Z")


def test_after_inside_the_repeated_hour_respects_the_policy() -> None:
    first = ScheduleSpec("30 2 * * *", "Europe/Zurich", on_repeated="first")
    last = ScheduleSpec("30 2 * * *", "Europe/Zurich", on_repeated="last")
    both = ScheduleSpec("30 2 * * *", "Europe/Zurich", on_repeated="both")
    # 02:10 CET, the second pass: 02:30 CET is still ahead in real time.
    second_pass = utc("2027-10-31T01:10Z")
    assert next_fire(first, second_pass) == utc("2027-11-01T01:30Z")
    assert next_fire(last, second_pass) == utc("2027-10-31T01:30Z")
    assert next_fire(both, second_pass) == utc("2027-10-31T01:30Z")
    # 02:40 CEST, the first pass after its 02:30: the second pass 02:30 CET is ahead.
    first_pass = utc("2027-10-31T00:40Z")
    assert next_fire(first, first_pass) == utc("2027-11-01T01:30Z")
    assert next_fire(last, first_pass) == utc("2027-10-31T01:30Z")
    assert next_fire(both, first_pass) == utc("2027-10-31T01:30Z")


def test_wildcard_after_late_in_first_pass_goes_back_in_wall_time() -> None:
    spec = ScheduleSpec("10 * * * *", "America/New_York")
    # 01:50 EDT; the next real instant with minute 10 is 01:10 EST.
    assert next_fire(spec, utc("2027-11-07T05:50Z")) == utc("2027-11-07T06:10Z")


def test_after_may_be_in_any_zone_and_result_is_utc() -> None:
    spec = ScheduleSpec("0 9 * * *", "Asia/Kolkata")
    after = datetime(2027, 6, 1, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    result = next_fire(spec, after)
    assert result.tzinfo is UTC
    assert result == utc("2027-06-02T03:30Z")


def test_naive_datetimes_are_rejected() -> None:
    spec = ScheduleSpec("0 9 * * *", "UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(spec, datetime(2027, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        preview(spec, 1, datetime(2027, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        matching_times(spec, datetime(2027, 1, 1), utc("2027-01-02T00:00Z"))


def test_six_field_specs_have_leading_seconds() -> None:
    spec = ScheduleSpec("5 * * * * *", "UTC")
    assert fires(spec, "2027-01-01T00:00Z", 2) == ["2027-01-01T00:00:05Z", "2027-01-01T00:01:05Z"]
    daily = ScheduleSpec("30 0 9 * * *", "Europe/Zurich")
    assert fires(daily, "2027-06-01T00:00Z", 1) == ["2027-06-01T07:00:30Z"]


def test_sub_second_after_is_handled_exactly() -> None:
    spec = ScheduleSpec("* * * * * *", "UTC")
    after = utc("2027-01-01T00:00:59Z") + timedelta(microseconds=999_999)
    assert next_fire(spec, after) == utc("2027-01-01T00:01:00Z")
    minutes = ScheduleSpec("* * * * *", "UTC")
    assert next_fire(minutes, after) == utc("2027-01-01T00:01:00Z")


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("@hourly", "2027-05-05T10:00Z", "2027-05-05T11:00:00Z"),
        ("@daily", "2027-05-05T10:00Z", "2027-05-06T00:00:00Z"),
        ("@midnight", "2027-05-05T10:00Z", "2027-05-06T00:00:00Z"),
        ("@weekly", "2027-05-05T10:00Z", "2027-05-09T00:00:00Z"),
        ("@monthly", "2027-05-05T10:00Z", "2027-06-01T00:00:00Z"),
        ("@yearly", "2027-05-05T10:00Z", "2028-01-01T00:00:00Z"),
        ("@annually", "2027-05-05T10:00Z", "2028-01-01T00:00:00Z"),
        ("0 0 L 2 *", "2027-05-05T10:00Z", "2028-02-29T00:00:00Z"),
        ("0 0 * * 1#2", "2027-05-05T10:00Z", "2027-05-10T00:00:00Z"),
        ("0 0 * * L5", "2027-05-05T10:00Z", "2027-05-28T00:00:00Z"),
        ("0 0 15W * *", "2027-05-05T10:00Z", "2027-05-14T00:00:00Z"),
        ("0 0 31 2 1", "2027-05-05T10:00Z", "2028-02-07T00:00:00Z"),
        ("0 0 * 2 1#5", "2027-05-05T10:00Z", "2044-02-29T00:00:00Z"),
    ],
)
def test_macros_and_special_fields_in_utc(cron: str, after: str, expected: str) -> None:
    assert fires(ScheduleSpec(cron, "UTC"), after, 1) == [expected]


def test_preview_defaults_to_now() -> None:
    before = datetime.now(UTC)
    (first,) = preview(ScheduleSpec("* * * * * *", "UTC"), 1)
    assert before < first <= before + timedelta(seconds=2)
    assert preview(ScheduleSpec("* * * * *", "UTC"), 0) == []
    with pytest.raises(ValueError):
        preview(ScheduleSpec("* * * * *", "UTC"), -1)


def test_matching_times_is_start_exclusive_end_inclusive() -> None:
    spec = ScheduleSpec("0 * * * *", "UTC")
    got = matching_times(spec, utc("2027-01-01T00:00Z"), utc("2027-01-01T03:00Z"))
    assert got == [utc("2027-01-01T01:00Z"), utc("2027-01-01T02:00Z"), utc("2027-01-01T03:00Z")]
    assert matching_times(spec, utc("2027-01-01T00:00Z"), utc("2027-01-01T00:59Z")) == []


def test_matching_times_enforces_its_limit() -> None:
    spec = ScheduleSpec("* * * * * *", "UTC")
    start, end = utc("2027-01-01T00:00Z"), utc("2027-01-01T00:01Z")
    assert len(matching_times(spec, start, end, limit=60)) == 60
    with pytest.raises(TooManyFiresError) as info:
        matching_times(spec, start, end, limit=59)
    assert info.value.limit == 59
    with pytest.raises(TooManyFiresError):
        matching_times(spec, start, utc("2027-01-02T00:00Z"))
