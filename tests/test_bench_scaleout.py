"""bench.scaleout imports and its arithmetic holds (the bench itself runs in `make bench`)."""

from __future__ import annotations

import math

from bench import scaleout
from bench.__main__ import BENCHES


def test_scaleout_is_a_registered_bench() -> None:
    assert "scaleout" in BENCHES


def test_ratios_are_relative_to_one_replica() -> None:
    assert scaleout.ratios({1: 40.0, 2: 70.0, 3: 90.0}) == {1: 1.0, 2: 1.75, 3: 2.25}
    assert scaleout.ratios({3: 30.0, 1: 20.0}) == {1: 1.0, 3: 1.5}
    assert all(math.isnan(v) for v in scaleout.ratios({1: 0.0, 2: 5.0}).values())


def test_instants_are_the_whole_seconds_of_a_closed_window() -> None:
    assert scaleout.instants(10.0, 13.0) == [10.0, 11.0, 12.0, 13.0]
    assert scaleout.instants(10.5, 12.9) == [11.0, 12.0]
    assert scaleout.instants(11.2, 11.8) == []


def test_fire_accounting_counts_missed_and_duplicated_instants() -> None:
    expected = [("a", 1.0), ("a", 2.0), ("a", 3.0), ("b", 1.0)]
    fired = [("a", 1.0), ("a", 2.0), ("a", 2.0000004), ("a", 2.0), ("b", 1.0), ("b", 9.0)]
    assert scaleout.fire_accounting(expected, fired) == {
        "expected": 4,
        "missed": 1,  # a@3
        "duplicated": 2,  # a@2 ran three times; b@9 is outside the window
    }
    assert scaleout.fire_accounting([("a", 1.0)], [("a", 1.0)]) == {
        "expected": 1,
        "missed": 0,
        "duplicated": 0,
    }


def test_missing_lists_the_expected_fires_without_a_run_in_time_order() -> None:
    expected = [("a", 3.0), ("a", 1.0), ("b", 2.0), ("b", 3.0)]
    fired = [("a", 1.0000002), ("b", 3.0), ("c", 1.0)]
    assert scaleout.missing(expected, fired) == [("b", 2.0), ("a", 3.0)]
    assert scaleout.missing(expected, [*fired, ("a", 3.0), ("b", 2.0)]) == []


def test_lag_summary_is_nearest_rank_in_milliseconds() -> None:
    lags = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert scaleout.lag_summary(lags) == {
        "fires": 100,
        "p50_ms": 51.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
    }
    empty = scaleout.lag_summary([])
    assert empty["fires"] == 0 and math.isnan(empty["p50_ms"])
