"""What an action handler receives and how handlers are looked up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autom.core.registry import ActionType


@dataclass
class Budget:
    """LLM spend of one run against its cap (None = no cap)."""

    limit_usd: float | None
    spent_usd: float = 0.0

    def remaining(self) -> float | None:
        """Dollars left, or None without a cap."""
        return None if self.limit_usd is None else self.limit_usd - self.spent_usd


class ToolCallLog(Protocol):
    """Where an agent step records its tool calls as they happen (durable, lease-checked)."""

    async def completed(self) -> dict[int, dict[str, Any]]:
        """Calls of this step that finished in an earlier attempt or run attempt, by number."""
        ...

    async def begin(self, call_n: int, name: str, arguments: Any) -> None:
        """The tool is about to be called."""
        ...

    async def finish(
        self,
        call_n: int,
        status: str,
        result: Any,
        error: dict[str, Any] | None,
        *,
        name: str | None = None,
        arguments: Any = None,
    ) -> None:
        """The call's outcome; with `name`, a call that never began (refused)."""
        ...


class ChildRuns(Protocol):
    """Starts a run of another automation of the workspace and waits for its outcome."""

    async def run(self, ctx: ActionContext, automation: str, inputs: dict[str, Any]) -> Any:
        """The child run's output; raises StepError when it did not succeed."""
        ...


@dataclass
class ActionContext:
    """Everything a handler may know about the step it runs."""

    run_id: str
    step_id: str
    attempt: int
    workspace_id: str
    automation_id: str
    principal: str
    budget: Budget
    log: logging.Logger
    # Masks resolved secret values; handlers apply it to anything they log.
    redact: Callable[[Any], Any] = lambda value: value
    # Filled by handlers that spend: recorded on the step and added to the run.
    cost_usd: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    # Set for a tool call of an agent step: its number within the step (from 1).
    call_n: int = 0
    tool_calls: ToolCallLog | None = None
    child_runs: ChildRuns | None = None
    chain_depth: int = 0

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and redeliveries, so a sink can dedupe replays."""
        if self.call_n:
            return f"{self.run_id}:{self.step_id}:{self.call_n}"
        return f"{self.run_id}:{self.step_id}"


Handler = Callable[[dict[str, Any], ActionContext], Awaitable[Any]]


@dataclass(frozen=True)
class Action:
    """A catalog entry with the handler that runs it."""

    spec: ActionType
    handler: Handler


class Actions:
    """The actions this executor can run, by type."""

    def __init__(self, actions: list[Action]) -> None:
        self._by_type = {a.spec.type: a for a in actions}

    def get(self, action_type: str) -> Action | None:
        """The action, or None when unknown."""
        return self._by_type.get(action_type)

    def all(self) -> list[Action]:
        """Every action, sorted by type."""
        return [self._by_type[k] for k in sorted(self._by_type)]
