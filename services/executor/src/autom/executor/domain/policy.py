"""Retry, backoff and timeout policies resolved from a definition (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from autom.schedule import parse_duration

# The step timeout of an action the definition gives none (a server trickling bytes must not
# hold a run and a worker slot forever).
DEFAULT_STEP_TIMEOUT_SECONDS = 300.0


def seconds(value: Any, default: float | None) -> float | None:
    """A duration string ("90s", "10ms") in seconds; empty -> default."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    return parse_duration(str(value)).total_seconds()


@dataclass(frozen=True)
class RetryPolicy:
    """How a step's failed attempts are retried (attempts = 1 + max_retries)."""

    max_retries: int = 0
    backoff: str = "exponential"
    initial_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True

    @property
    def attempts(self) -> int:
        """Total attempts allowed."""
        return 1 + max(0, self.max_retries)

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Delay before retry number `retry` (1-based), capped at max_delay."""
        if self.backoff == "none":
            base = self.initial_delay
        elif self.backoff == "linear":
            base = self.initial_delay * retry
        else:
            base = self.initial_delay * (2 ** (retry - 1))
        base = min(base, self.max_delay)
        if self.jitter and base > 0:
            # Full jitter on the upper half keeps retries spread without collapsing to zero.
            base = base / 2 + (rng or random).random() * base / 2
        return max(0.0, base)


def retry_policy(execution: dict[str, Any], step: dict[str, Any]) -> RetryPolicy:
    """execution.retry overlaid with the step's own retry."""
    merged: dict[str, Any] = {**(execution.get("retry") or {}), **(step.get("retry") or {})}
    default = RetryPolicy()
    initial = seconds(merged.get("initial_delay"), default.initial_delay)
    maximum = seconds(merged.get("max_delay"), default.max_delay)
    return RetryPolicy(
        max_retries=int(merged.get("max_retries", default.max_retries) or 0),
        backoff=str(merged.get("backoff") or default.backoff),
        initial_delay=default.initial_delay if initial is None else initial,
        max_delay=default.max_delay if maximum is None else maximum,
        jitter=bool(merged.get("jitter", default.jitter)),
    )


def step_timeout(
    execution: dict[str, Any], step: dict[str, Any], default: float | None = None
) -> float | None:
    """The step's timeout in seconds, else execution.step_timeout, else `default`."""
    return (
        seconds(step.get("timeout"), None)
        or seconds(execution.get("step_timeout"), None)
        or default
    )


def run_timeout(execution: dict[str, Any]) -> float | None:
    """The whole-run timeout in seconds, or none."""
    return seconds(execution.get("timeout"), None)
