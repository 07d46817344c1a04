"""Catch-up math: what a due schedule fires for each policy, window, bound and jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autom.core.errors import ValidationFailed
from autom.scheduler.domain.config import ScheduleConfig, parse_config
from autom.scheduler.domain.due import CATCHUP, SCHEDULED, due_time, first_fire, plan_due
from autom.scheduler.domain.model import fire_id

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Zurich
TOL = timedelta(seconds=5)


def hourly(**overrides: object) -> ScheduleConfig:
    return parse_config({"cron": "0 * * * *", "timezone": "Europe/Zurich", **overrides})


def test_on_time_instant_fires_once_and_advances_to_the_next() -> None:
    plan = plan_due(
        schedule_id="a:s",
        config=hourly(),
        next_fire_at=T0,
        fired_count=0,
        now=T0 + timedelta(milliseconds=30),
        late_tolerance=TOL,
    )
    assert plan.fires == [(T0, SCHEDULED)]
    assert plan.missed == 0
    assert plan.next_fire_at == T0 + timedelta(hours=1)
    assert plan.due_at == plan.next_fire_at


@pytest.mark.parametrize(
    ("catchup", "fired", "missed"),
    [
        ("none", [], 3),
        ("latest", [(T0 + timedelta(hours=2), CATCHUP)], 2),
        ("all", [(T0 + timedelta(hours=h), CATCHUP) for h in range(3)], 0),
    ],
)
def test_downtime_follows_the_catchup_policy(
    catchup: str, fired: list[tuple[datetime, str]], missed: int
) -> None:
    # Down across 08:00, 09:00 and 10:00 UTC; back at 10:30.
    plan = plan_due(
        schedule_id="a:s",
        config=hourly(catchup=catchup, catchup_window="6h"),
        next_fire_at=T0,
        fired_count=0,
        now=T0 + timedelta(hours=2, minutes=30),
        late_tolerance=TOL,
    )
    assert plan.fires == fired
    assert plan.missed == missed
    assert plan.next_fire_at == T0 + timedelta(hours=3)


def test_catchup_window_drops_and_counts_older_instants() -> None:
    plan = plan_due(
        schedule_id="a:s",
        config=hourly(catchup="all", catchup_window="90m"),
        next_fire_at=T0,
        fired_count=0,
        now=T0 + timedelta(hours=5, minutes=30),  # 08..13 UTC missed; window from 12:00
        late_tolerance=TOL,
    )
    assert plan.fires == [(T0 + timedelta(hours=5), CATCHUP)]
    assert plan.missed == 5


def test_latest_does_not_add_a_stale_fire_when_an_on_time_one_fires() -> None:
    config = parse_config({"cron": "* * * * * *", "catchup": "latest"})
    now = T0 + timedelta(seconds=20, milliseconds=10)
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=0,
        now=now,
        late_tolerance=TOL,
    )
    # 16..20 s are within the tolerance; 0..15 s were missed.
    assert [t for t, _ in plan.fires] == [T0 + timedelta(seconds=s) for s in range(16, 21)]
    assert all(kind == SCHEDULED for _, kind in plan.fires)
    assert plan.missed == 16
    assert plan.next_fire_at == T0 + timedelta(seconds=21)


def test_all_is_chunked_and_resumes_where_it_stopped() -> None:
    config = parse_config({"cron": "* * * * * *", "catchup": "all", "catchup_window": "1h"})
    now = T0 + timedelta(seconds=100)
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=0,
        now=now,
        late_tolerance=TOL,
        chunk=40,
    )
    assert [t for t, _ in plan.fires] == [T0 + timedelta(seconds=s) for s in range(40)]
    assert plan.next_fire_at == T0 + timedelta(seconds=40)
    assert plan.missed == 0


def test_max_fires_stops_the_schedule() -> None:
    config = hourly(max_fires=3, catchup="all", catchup_window="1d")
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=1,
        now=T0 + timedelta(hours=4),
        late_tolerance=TOL,
    )
    assert [t for t, _ in plan.fires] == [T0, T0 + timedelta(hours=1)]
    assert plan.next_fire_at is None and plan.due_at is None


def test_end_at_bounds_fires_and_ends_the_schedule() -> None:
    config = hourly(end_at="2026-03-02T09:30:00Z", catchup="all")
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0 + timedelta(hours=1),
        fired_count=0,
        now=T0 + timedelta(hours=1, seconds=1),
        late_tolerance=TOL,
    )
    assert plan.fires == [(T0 + timedelta(hours=1), SCHEDULED)]
    assert plan.next_fire_at is None


def test_start_at_delays_the_first_fire() -> None:
    config = hourly(start_at="2026-03-02T10:00:00Z")
    assert first_fire(config, T0) == T0 + timedelta(hours=2)
    assert first_fire(config, T0 + timedelta(hours=2)) == T0 + timedelta(hours=3)


def test_jitter_is_deterministic_and_bounded_by_the_next_instant() -> None:
    config = parse_config({"cron": "*/10 * * * * *", "jitter": "1h"})
    due = due_time("a:s", config, T0)
    assert due == due_time("a:s", config, T0)
    assert due is not None and T0 <= due < T0 + timedelta(seconds=10)
    assert due_time("b:s", config, T0) != due


def test_jittered_instant_waits_for_its_due_time() -> None:
    config = parse_config({"cron": "*/10 * * * * *", "jitter": "9s"})
    due = due_time("a:s", config, T0)
    assert due is not None and due > T0
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=0,
        now=T0,
        late_tolerance=TOL,
    )
    assert plan.fires == []
    assert plan.next_fire_at == T0
    assert plan.due_at == due


def test_six_field_cron_in_zurich_fires_every_other_second() -> None:
    config = parse_config({"cron": "*/2 * * * * *", "timezone": "Europe/Zurich"})
    assert first_fire(config, T0) == T0 + timedelta(seconds=2)


def test_fire_id_is_schedule_and_nominal_utc() -> None:
    assert fire_id("a:s", T0) == "a:s:2026-03-02T08:00:00Z"
    micro = T0 + timedelta(microseconds=5)
    assert fire_id("a:s", micro) == "a:s:2026-03-02T08:00:00.000005Z"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.cron"),
        ({"cron": "61 * * * *"}, "config.cron"),
        ({"cron": "0 0 31 2 *"}, "config.cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "config.timezone"),
        ({"cron": "0 9 * * *", "on_missing": "later"}, "config.on_missing"),
        ({"cron": "0 9 * * *", "catchup": "some"}, "config.catchup"),
        ({"cron": "0 9 * * *", "catchup_window": "soon"}, "config.catchup_window"),
        ({"cron": "0 9 * * *", "jitter": "-1s"}, "config.jitter"),
        ({"cron": "0 9 * * *", "start_at": "tomorrow"}, "config.start_at"),
        ({"cron": "0 9 * * *", "end_at": "2026-01-01T00:00:00"}, "config.end_at"),
        ({"cron": "0 9 * * *", "max_fires": -1}, "config.max_fires"),
    ],
)
def test_invalid_config_names_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_config(config)
    assert field in [v.field for v in info.value.violations]


def test_invalid_config_names_every_bad_schedule_field_at_once() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_config({"cron": "61 * * * *", "timezone": "Mars/Olympus", "on_missing": "later"})
    fields = {v.field for v in info.value.violations}
    assert {"config.cron", "config.timezone", "config.on_missing"} <= fields


def test_huge_backlog_keeps_the_newest_instants_and_counts_the_rest() -> None:
    config = parse_config({"cron": "* * * * * *", "catchup": "all", "catchup_window": "3d"})
    now = T0 + timedelta(days=2)
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=0,
        now=now,
        late_tolerance=TOL,
        chunk=10_000,
    )
    assert plan.missed >= 100_000
    assert plan.fires[-1] == (now, SCHEDULED)
    assert len(plan.fires) == 60


def test_instants_within_the_lead_are_planned_ahead() -> None:
    config = parse_config({"cron": "* * * * * *", "catchup": "none"})
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0 + timedelta(seconds=1),
        fired_count=0,
        now=T0 + timedelta(milliseconds=200),
        late_tolerance=TOL,
        ahead=timedelta(seconds=1),
    )
    assert plan.fires == [(T0 + timedelta(seconds=1), SCHEDULED)]
    assert plan.next_fire_at == T0 + timedelta(seconds=2)


def test_latest_catches_up_even_when_an_instant_is_planned_ahead() -> None:
    config = hourly(catchup="latest", catchup_window="1d")
    now = T0 + timedelta(hours=2, minutes=59, seconds=59, milliseconds=500)
    plan = plan_due(
        schedule_id="a:s",
        config=config,
        next_fire_at=T0,
        fired_count=0,
        now=now,
        late_tolerance=TOL,
        ahead=timedelta(seconds=1),
    )
    assert plan.fires == [
        (T0 + timedelta(hours=2), CATCHUP),
        (T0 + timedelta(hours=3), SCHEDULED),
    ]
    assert plan.missed == 2
