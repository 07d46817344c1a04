"""Cron + IANA time zone math for Autom: next fire, DST policy, describe, preview."""

from autom.schedule.describe import describe
from autom.schedule.durations import parse_duration
from autom.schedule.errors import ScheduleError, TooManyFiresError
from autom.schedule.fire import matching_times, next_fire, preview
from autom.schedule.jitter import jitter_offset
from autom.schedule.spec import (
    OnMissing,
    OnRepeated,
    ScheduleSpec,
    is_wildcard,
    parse_spec,
    schedule_errors,
)

__all__ = [
    "OnMissing",
    "OnRepeated",
    "ScheduleError",
    "ScheduleSpec",
    "TooManyFiresError",
    "describe",
    "is_wildcard",
    "jitter_offset",
    "matching_times",
    "next_fire",
    "parse_duration",
    "parse_spec",
    "preview",
    "schedule_errors",
]
