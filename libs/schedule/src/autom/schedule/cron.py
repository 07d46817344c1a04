"""Cron parsing and naive wall-clock matching on top of croniter."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import cast

from croniter import CroniterBadDateError, CroniterError, croniter

from autom.schedule.errors import ScheduleError

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# croniter's H (hashed) and R (random) fields need a hash id or change on every parse;
# a schedule must mean the same instants on every replica.
_HASH_OR_RANDOM = re.compile(r"^[hr](\(|/|$)", re.IGNORECASE)
# croniter reads an equal range ("9-9", "MON-MON") as the whole cycle; cron means one value.
_RANGE = re.compile(r"^([^-/]+)-([^-/]+)(/\d+)?$")

# Every (month, length, weekday of the 1st) combination occurs in 2000-2027, and no
# day-of-month/month/day-of-week pattern depends on anything else, so a pattern with no
# match from 2000 within croniter's 50-year search window matches nowhere at all. The
# same window bounds next-fire searches: the longest real gap between matches (a leap
# day on a given weekday) is 40 years, across a non-leap century year.
_CYCLE_START = datetime(1999, 12, 31, 23, 59, 59)

_MICROSECOND = timedelta(microseconds=1)


class CompiledCron:
    """A validated cron expression that finds matches in naive local wall time."""

    __slots__ = ("_template", "fields", "has_seconds", "wildcard")

    def __init__(self, fields: tuple[str, ...], template: croniter) -> None:
        self.fields = fields
        self.has_seconds = len(fields) == 6
        minute, hour = fields[-5], fields[-4]
        self.wildcard = minute.startswith("*") or hour.startswith("*")
        self._template = template

    def first_at_or_after(self, wall: datetime) -> datetime:
        """Return the first matching naive wall time >= `wall` (raises past ~50 years)."""
        # croniter returns the first match strictly after its start at field resolution;
        # starting from the last whole second/minute before `wall` keeps its float
        # timestamps exact.
        base = (wall - _MICROSECOND).replace(microsecond=0)
        if not self.has_seconds:
            base = base.replace(second=0)
        # The template is shared (and possibly across threads); get_next mutates state.
        it = copy.copy(self._template)
        return cast(datetime, it.get_next(datetime, start_time=base))


def _single_value_range(part: str) -> str:
    match = _RANGE.match(part)
    if match and match[1].lower() == match[2].lower():
        return match[1]
    return part


def _fail(message: str) -> ScheduleError:
    return ScheduleError("cron", message)


@lru_cache(maxsize=4096)
def compile_cron(expression: str) -> CompiledCron:
    """Parse and validate a 5-field, 6-field (leading seconds) or macro cron expression."""
    text = expression.strip()
    if not text:
        raise _fail("cron expression is empty")
    if not text.isascii():
        raise _fail(f"cron expression {expression!r} contains non-ASCII characters")
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            raise _fail(f"unknown cron macro {text!r}; supported: {', '.join(MACROS)}")
        text = macro
    fields = tuple(text.split())
    if len(fields) not in (5, 6):
        raise _fail(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 with leading seconds"
        )
    for field in fields:
        if any(_HASH_OR_RANDOM.match(part) for part in field.split(",")):
            raise _fail(f"cron field {field!r}: hashed (H) and random (R) values are not supported")
    fields = tuple(",".join(map(_single_value_range, field.split(","))) for field in fields)
    try:
        template = croniter(" ".join(fields), _CYCLE_START, second_at_beginning=len(fields) == 6)
        copy.copy(template).get_next(datetime)
    except CroniterBadDateError:
        raise _fail(f"cron expression {expression!r} never fires (no such date)") from None
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _fail(f"invalid cron expression {expression!r}: {exc}") from None
    return CompiledCron(fields, template)
