"""The schedule spec: cron expression, IANA zone and DST policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from autom.schedule.cron import CompiledCron, compile_cron
from autom.schedule.errors import ScheduleError
from autom.schedule.zones import load_zone

OnMissing = Literal["shift", "skip"]
OnRepeated = Literal["first", "last", "both"]

_ON_MISSING: tuple[str, ...] = get_args(OnMissing)
_ON_REPEATED: tuple[str, ...] = get_args(OnRepeated)


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule; construction raises ScheduleError naming the bad field.

    `on_missing` and `on_repeated` apply only to fixed-time specs (see `is_wildcard`);
    wildcard specs run in real time across DST transitions.
    """

    cron: str
    timezone: str
    on_missing: OnMissing = "shift"
    on_repeated: OnRepeated = "first"
    _compiled: CompiledCron = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.cron, str):
            raise ScheduleError("cron", "cron expression must be a string")
        if errors := _problems(self.cron, self.timezone, self.on_missing, self.on_repeated):
            raise errors[0]
        object.__setattr__(self, "_compiled", compile_cron(self.cron))  # cached


def _problems(cron: str, timezone: str, on_missing: str, on_repeated: str) -> list[ScheduleError]:
    errors = []
    for check, value in ((compile_cron, cron), (load_zone, timezone)):
        try:
            check(value)
        except ScheduleError as exc:
            errors.append(exc)
    for name, value, allowed in (
        ("on_missing", on_missing, _ON_MISSING),
        ("on_repeated", on_repeated, _ON_REPEATED),
    ):
        if value not in allowed:
            errors.append(ScheduleError(name, f"{value!r} is not one of {', '.join(allowed)}"))
    return errors


def _normalized(cron: Any, timezone: Any, on_missing: str, on_repeated: str) -> tuple[Any, ...]:
    """Untyped input (config, API) with surrounding and repeated blanks trimmed."""
    return (
        " ".join(cron.split()) if isinstance(cron, str) else cron,
        timezone.strip() if isinstance(timezone, str) else timezone,
        on_missing.strip().lower(),
        on_repeated.strip().lower(),
    )


def parse_spec(
    cron: str, timezone: str, *, on_missing: str = "shift", on_repeated: str = "first"
) -> ScheduleSpec:
    """Build a ScheduleSpec from untyped input; raises ScheduleError naming the first bad field."""
    return ScheduleSpec(*_normalized(cron, timezone, on_missing, on_repeated))


def schedule_errors(
    cron: str, timezone: str, *, on_missing: str = "shift", on_repeated: str = "first"
) -> list[ScheduleError]:
    """Every problem of a schedule at once, one per field (parse_spec stops at the first)."""
    return _problems(*_normalized(cron, timezone, on_missing, on_repeated))


def is_wildcard(spec: ScheduleSpec) -> bool:
    """True when the minute or hour field starts with `*`: such specs ignore the DST policy."""
    return spec._compiled.wildcard
