"""The schedule spec: cron expression, IANA zone and DST policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

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
        compiled = compile_cron(self.cron)
        load_zone(self.timezone)
        if self.on_missing not in _ON_MISSING:
            raise ScheduleError(
                "on_missing", f"{self.on_missing!r} is not one of {', '.join(_ON_MISSING)}"
            )
        if self.on_repeated not in _ON_REPEATED:
            raise ScheduleError(
                "on_repeated", f"{self.on_repeated!r} is not one of {', '.join(_ON_REPEATED)}"
            )
        object.__setattr__(self, "_compiled", compiled)


def parse_spec(
    cron: str, timezone: str, *, on_missing: str = "shift", on_repeated: str = "first"
) -> ScheduleSpec:
    """Build a ScheduleSpec from untyped input (config, API), trimming surrounding blanks."""
    return ScheduleSpec(
        cron=" ".join(cron.split()) if isinstance(cron, str) else cron,
        timezone=timezone.strip() if isinstance(timezone, str) else timezone,
        on_missing=on_missing.strip().lower(),  # type: ignore[arg-type]  # checked by ScheduleSpec
        on_repeated=on_repeated.strip().lower(),  # type: ignore[arg-type]
    )


def is_wildcard(spec: ScheduleSpec) -> bool:
    """True when the minute or hour field starts with `*`: such specs ignore the DST policy."""
    return spec._compiled.wildcard
