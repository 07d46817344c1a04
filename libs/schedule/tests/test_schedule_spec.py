import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autom.schedule import ScheduleError, ScheduleSpec, describe, is_wildcard, parse_spec


def test_spec_defaults_to_shift_and_first() -> None:
    spec = ScheduleSpec("0 9 * * 1", "Europe/Zurich")
    assert (spec.on_missing, spec.on_repeated) == ("shift", "first")


def test_spec_equality_and_hash_ignore_compiled_state() -> None:
    a = ScheduleSpec("0 9 * * 1", "Europe/Zurich")
    b = ScheduleSpec("0 9 * * 1", "Europe/Zurich")
    assert a == b
    assert hash(a) == hash(b)
    assert "_compiled" not in repr(a)


def test_spec_survives_replace_and_pickle() -> None:
    spec = ScheduleSpec("0 9 * * 1", "Europe/Zurich")
    assert dataclasses.replace(spec, on_repeated="both").on_repeated == "both"
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(ScheduleError):
        dataclasses.replace(spec, timezone="Nowhere/Land")


@pytest.mark.parametrize(
    "cron",
    [
        "*/15 * * * *",
        "0 9 * * 1-5",
        "0 9 * * MON-FRI",
        "0 0 1 JAN *",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 * * 1#2",
        "0 0 * * L5",
        "0 0 ? * 1",
        "*/2 * * * * *",
        "30 0 9 * * *",
        "0 0 29 2 *",
        "0 0 * 2 1#5",
        "0 0 31 2 1",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@DAILY",
    ],
)
def test_valid_cron_expressions_are_accepted(cron: str) -> None:
    ScheduleSpec(cron, "UTC")


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("* * * *", "4 fields"),
        ("0 0 0 1 1 * 2030", "7 fields"),
        ("61 * * * *", "invalid cron"),
        ("* 24 * * *", "invalid cron"),
        ("* * * * 8", "invalid cron"),
        ("hello world foo bar baz", "invalid cron"),
        ("*/0 * * * *", "invalid cron"),
        ("@reboot", "unknown cron macro"),
        ("@every 5m", "unknown cron macro"),
        ("H * * * *", "hashed"),
        ("R * * * *", "random"),
        ("0 H(0-3) * * *", "hashed"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 30 2 ?", "never fires"),
        ("0 0 0 31 2 *", "never fires"),
        ("0\u00a00 * * *", "non-ASCII"),
    ],
)
def test_invalid_cron_expressions_raise_schedule_error_on_cron(cron: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as info:
        ScheduleSpec(cron, "UTC")
    assert info.value.field == "cron"
    assert fragment in info.value.message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "zone", ["", "local", "localtime", "Factory", "Mars/Olympus", "europe/zurich", "/etc/passwd"]
)
def test_unknown_zones_raise_schedule_error_on_timezone(zone: str) -> None:
    with pytest.raises(ScheduleError) as info:
        ScheduleSpec("0 9 * * *", zone)
    assert info.value.field == "timezone"


@pytest.mark.parametrize("zone", ["UTC", "Etc/GMT+5", "Asia/Kolkata", "America/Santiago"])
def test_iana_zones_are_accepted(zone: str) -> None:
    ScheduleSpec("0 9 * * *", zone)


def test_bad_policies_name_their_field() -> None:
    with pytest.raises(ScheduleError) as missing:
        ScheduleSpec("0 9 * * *", "UTC", on_missing="later")  # type: ignore[arg-type]
    assert missing.value.field == "on_missing"
    with pytest.raises(ScheduleError) as repeated:
        ScheduleSpec("0 9 * * *", "UTC", on_repeated="all")  # type: ignore[arg-type]
    assert repeated.value.field == "on_repeated"


def test_schedule_error_pickles_with_its_field() -> None:
    error = pickle.loads(pickle.dumps(ScheduleError("cron", "bad")))
    assert (error.field, error.message, str(error)) == ("cron", "bad", "cron: bad")


def test_parse_spec_trims_and_normalises_untyped_input() -> None:
    spec = parse_spec("  0   9 * *\t1 ", " Europe/Zurich ", on_missing=" SKIP", on_repeated="Both ")
    assert spec == ScheduleSpec("0 9 * * 1", "Europe/Zurich", on_missing="skip", on_repeated="both")
    with pytest.raises(ScheduleError) as info:
        parse_spec("0 9 * * 1", "UTC", on_repeated="twice")
    assert info.value.field == "on_repeated"


@pytest.mark.parametrize(
    ("cron", "wildcard"),
    [
        ("*/15 * * * *", True),
        ("0 * * * *", True),
        ("0 */2 * * *", True),
        ("*/2 * * * * *", True),
        ("0 * * * * *", True),
        ("@hourly", True),
        ("30 2 * * *", False),
        ("0,30 1-3 * * *", False),
        ("0-59 0-23 * * *", False),
        ("*/10 30 2 * * *", False),
        ("@daily", False),
        ("@weekly", False),
        ("@yearly", False),
    ],
)
def test_is_wildcard_looks_at_minute_and_hour_fields(cron: str, wildcard: bool) -> None:
    assert is_wildcard(ScheduleSpec(cron, "UTC")) is wildcard


@pytest.mark.parametrize(
    ("cron", "zone", "expected"),
    [
        ("0 9 * * 1", "Europe/Zurich", "At 09:00, only on Monday (Europe/Zurich)"),
        ("*/15 * * * *", "UTC", "Every 15 minutes (UTC)"),
        ("*/2 * * * * *", "Asia/Kolkata", "Every 2 seconds (Asia/Kolkata)"),
        ("30 0 9 * * 1-5", "UTC", "At 09:00:30, Monday through Friday (UTC)"),
        ("@daily", "America/Santiago", "At 00:00 (America/Santiago)"),
        ("@hourly", "UTC", "Every hour (UTC)"),
        ("0 0 ? * 1", "UTC", "At 00:00, only on Monday (UTC)"),
        ("0 0 0 ? * 1", "UTC", "At 00:00, only on Monday (UTC)"),
    ],
)
def test_describe_uses_cron_descriptor_and_appends_the_zone(
    cron: str, zone: str, expected: str
) -> None:
    assert describe(ScheduleSpec(cron, zone)) == expected


_CRONISH = st.text(alphabet="0123456789*/,-?#LWHR@ abcdefjmnorstuyFMSTW", max_size=24)


@settings(max_examples=300, deadline=None)
@given(cron=_CRONISH)
def test_arbitrary_text_either_parses_or_raises_schedule_error(cron: str) -> None:
    try:
        spec = ScheduleSpec(cron, "UTC")
    except ScheduleError as error:
        assert error.field == "cron"
    else:
        assert describe(spec).endswith("(UTC)")
