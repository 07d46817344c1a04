"""Per-workspace quotas: their names and the deployment's defaults (0 means no limit)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

# Every quota a deployment admin may set per workspace.
QUOTA_NAMES = (
    "active_automations",
    "min_schedule_interval_seconds",
    "runs_per_minute",
    "concurrent_runs",
    "webhook_requests_per_minute",
    "llm_spend_usd_per_day",
)


class QuotaDefaults(BaseModel):
    """Limits of a workspace the admin has set nothing for; 0 is no limit.

    Only active_automations is limited out of the box: the run quotas would change what an
    existing deployment does, so an operator opts in (AUTOM_QUOTA_DEFAULTS or per workspace).
    """

    active_automations: float = Field(default=1000, ge=0)
    min_schedule_interval_seconds: float = Field(default=0, ge=0)
    runs_per_minute: float = Field(default=0, ge=0)
    concurrent_runs: float = Field(default=0, ge=0)
    webhook_requests_per_minute: float = Field(default=0, ge=0)
    llm_spend_usd_per_day: float = Field(default=0, ge=0)


def effective(defaults: QuotaDefaults, overrides: Mapping[str, float]) -> dict[str, float]:
    """Every quota: the admin's value where set, else the default."""
    base = defaults.model_dump()
    return {name: float(overrides.get(name, base[name])) for name in QUOTA_NAMES}


def reached(current: float, limit: float) -> bool:
    """True when one more would pass the limit (0: no limit)."""
    return limit > 0 and current >= limit
