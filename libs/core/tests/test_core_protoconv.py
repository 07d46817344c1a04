"""Timestamps built by hand match protobuf's own conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from autom.core.protoconv import from_timestamp, to_timestamp


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2026, 12, 1, 21, 5, 7, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 21, 5, 7, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # before the epoch: nanos stay >= 0
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
        datetime(2026, 6, 1, 12, 0, 0, 500),  # naive: local time, as astimezone reads it
    ],
)
def test_to_timestamp_matches_protobuf(dt: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(dt.astimezone(UTC))
    got = to_timestamp(dt)
    assert got == expected
    assert got is not None and from_timestamp(got) == dt.astimezone(UTC)


def test_none_stays_none() -> None:
    assert to_timestamp(None) is None
