"""A schedule trigger's config, parsed and validated into typed values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from autom.core.errors import ValidationFailed, Violation
from autom.core.registry import MAX_FIRES
from autom.schedule import (
    ScheduleError,
    ScheduleSpec,
    parse_duration,
    parse_spec,
    schedule_errors,
)

CATCHUP_POLICIES = ("none", "latest", "all")
DEFAULT_CATCHUP = "latest"
DEFAULT_CATCHUP_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ScheduleConfig:
    """Everything that decides when a schedule trigger fires."""

    cron: str
    timezone: str
    on_missing: str = "shift"
    on_repeated: str = "first"
    catchup: str = DEFAULT_CATCHUP
    catchup_window: timedelta = DEFAULT_CATCHUP_WINDOW
    jitter: timedelta = timedelta(0)
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_fires: int | None = None

    @property
    def spec(self) -> ScheduleSpec:
        """The cron spec (cached: replicas parse the same few specs over and over)."""
        return spec_for(self.cron, self.timezone, self.on_missing, self.on_repeated)

    def timing_key(self) -> tuple[Any, ...]:
        """The fields that change which instants fire; equal keys keep next_fire_at."""
        return (
            self.cron,
            self.timezone,
            self.on_missing,
            self.on_repeated,
            self.jitter,
            self.start_at,
            self.end_at,
            self.max_fires,
        )


@lru_cache(maxsize=8192)
def spec_for(cron: str, timezone: str, on_missing: str, on_repeated: str) -> ScheduleSpec:
    """A parsed spec; raises ScheduleError naming the bad field."""
    return parse_spec(cron, timezone, on_missing=on_missing, on_repeated=on_repeated)


def _timestamp(value: Any, field: str, out: list[Violation]) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        out.append(Violation(field, "must be an RFC 3339 date-time string"))
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        out.append(Violation(field, f"{value!r} is not an RFC 3339 date-time"))
        return None
    if parsed.tzinfo is None:
        out.append(Violation(field, "needs a UTC offset, e.g. 2026-01-01T09:00:00Z"))
        return None
    return parsed.astimezone(UTC)


def _duration(value: Any, default: timedelta, field: str, out: list[Violation]) -> timedelta:
    if value in (None, ""):
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        out.append(Violation(field, str(exc)))
        return default


def parse_config(config: dict[str, Any], *, prefix: str = "config") -> ScheduleConfig:
    """Validate a `schedule` trigger config; raise ValidationFailed with every violation."""
    out: list[Violation] = []
    cron = config.get("cron")
    timezone = config.get("timezone") or "UTC"
    on_missing = str(config.get("on_missing") or "shift")
    on_repeated = str(config.get("on_repeated") or "first")
    if not isinstance(cron, str) or not cron.strip():
        out.append(Violation(f"{prefix}.cron", "required: a cron expression"))
    elif not isinstance(timezone, str):
        out.append(Violation(f"{prefix}.timezone", "must be an IANA time zone name"))
    else:
        try:
            spec = spec_for(cron, timezone, on_missing, on_repeated)
            cron, timezone = spec.cron, spec.timezone
            on_missing, on_repeated = spec.on_missing, spec.on_repeated
        except ScheduleError:
            for exc in schedule_errors(
                cron, timezone, on_missing=on_missing, on_repeated=on_repeated
            ):
                out.append(Violation(f"{prefix}.{exc.field}", exc.message))
    catchup = str(config.get("catchup") or DEFAULT_CATCHUP)
    if catchup not in CATCHUP_POLICIES:
        out.append(Violation(f"{prefix}.catchup", f"must be one of {', '.join(CATCHUP_POLICIES)}"))
    window = _duration(
        config.get("catchup_window"),
        DEFAULT_CATCHUP_WINDOW,
        f"{prefix}.catchup_window",
        out,
    )
    jitter = _duration(config.get("jitter"), timedelta(0), f"{prefix}.jitter", out)
    start_at = _timestamp(config.get("start_at"), f"{prefix}.start_at", out)
    end_at = _timestamp(config.get("end_at"), f"{prefix}.end_at", out)
    if start_at and end_at and end_at < start_at:
        out.append(Violation(f"{prefix}.end_at", "must not be before start_at"))
    max_fires = config.get("max_fires")
    # The same rule as the trigger's config schema (an integral number up to MAX_FIRES).
    if isinstance(max_fires, float) and max_fires.is_integer() and 0 <= max_fires <= MAX_FIRES:
        max_fires = int(max_fires)
    if max_fires is not None and (
        isinstance(max_fires, bool)
        or not isinstance(max_fires, int)
        or not 0 <= max_fires <= MAX_FIRES
    ):
        out.append(
            Violation(f"{prefix}.max_fires", f"must be an integer between 0 and {MAX_FIRES}")
        )
        max_fires = None
    if out:
        raise ValidationFailed(out)
    assert isinstance(cron, str) and isinstance(timezone, str)
    return ScheduleConfig(
        cron=cron,
        timezone=timezone,
        on_missing=on_missing,
        on_repeated=on_repeated,
        catchup=catchup,
        catchup_window=window,
        jitter=jitter,
        start_at=start_at,
        end_at=end_at,
        # 0 means unlimited, as in the API's Schedule.max_fires.
        max_fires=max_fires or None,
    )
