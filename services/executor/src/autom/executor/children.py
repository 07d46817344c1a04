"""Automations called as tools: each call is a child run of the same principal, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from autom.core.errors import AutomError
from autom.executor.actions.base import ActionContext
from autom.executor.convert import latest_records
from autom.executor.errors import StepError
from autom.executor.quotas import RunQuotas
from autom.executor.service import fire_event
from autom.executor.sources import Snapshot
from autom.executor.store import TERMINAL, NewRun, RunStore
from autom.executor.watch import RunWatchers


class NamedDefinitions(Protocol):
    """Finds an automation of a workspace by name."""

    async def get_named(self, workspace_id: str, name: str) -> Snapshot:
        """The latest snapshot; raises NotFound."""
        ...


class ChildRunFailed(StepError):
    """The automation called as a tool did not succeed."""

    type_name = "ChildRunFailed"
    default_retryable = False


def child_fire_id(ctx: ActionContext, automation: str, inputs: dict[str, Any]) -> str:
    """One child run per tool call and request: a replay of the call finds the same run."""
    asked = hashlib.sha256(json.dumps([automation, inputs], sort_keys=True).encode()).hexdigest()
    return f"tool:{ctx.idempotency_key}:{asked[:16]}"


class ChildRuns:
    """Starts a pending run through the fire path (the worker runs it) and waits for it."""

    def __init__(
        self,
        *,
        store: RunStore,
        definitions: NamedDefinitions,
        watchers: RunWatchers,
        notify: Callable[[], None],
        max_depth: int,
        recheck_seconds: float = 1.0,
        quotas: RunQuotas | None = None,
    ) -> None:
        self._quotas = quotas
        self._store = store
        self._definitions = definitions
        self._watchers = watchers
        self._notify = notify
        self._max_depth = max_depth
        self._recheck = recheck_seconds

    async def run(self, ctx: ActionContext, automation: str, inputs: dict[str, Any]) -> Any:
        """The output of the child run's last plan step."""
        depth = ctx.chain_depth + 1
        if depth > self._max_depth:
            raise StepError(
                f"chain depth {depth} exceeds the limit of {self._max_depth}; "
                f"automation {automation!r} is not started",
                retryable=False,
                type_name="ChainTooDeep",
            )
        try:
            snapshot = await self._definitions.get_named(ctx.workspace_id, automation)
        except AutomError as exc:
            raise StepError(
                f"automation {automation!r}: {exc.message}", retryable=False, type_name="NotFound"
            ) from exc
        if snapshot.workspace_id != ctx.workspace_id or snapshot.status != "active":
            raise StepError(
                f"automation {automation!r} is {snapshot.status}, not active",
                retryable=False,
                type_name="FailedPrecondition",
            )
        run = NewRun(
            id=str(uuid.uuid4()),
            fire_id=child_fire_id(ctx, automation, inputs),
            workspace_id=ctx.workspace_id,
            automation_id=snapshot.automation_id,
            automation_version=snapshot.version,
            trigger_type="tool",
            trigger_id="",
            fire_inputs=inputs,
            scheduled_for=None,
            fired_at=datetime.now(UTC),
            last_fired_at=None,
            principal=ctx.principal,
            cause={
                "type": "tool",
                "upstream_run_id": ctx.run_id,
                "upstream_automation_id": ctx.automation_id,
                "step_id": ctx.step_id,
                "call_n": ctx.call_n,
            },
            upstream_run_id=ctx.run_id,
            chain_depth=depth,
        )
        refusal = await self._quotas.refusal(ctx.workspace_id) if self._quotas else None
        if refusal is not None and await self._store.by_fire(run.fire_id) is None:
            # The workspace's quotas (runs per minute, LLM spend per day...) bind child runs too.
            raise StepError(refusal.message, retryable=False, type_name="QuotaExceeded")
        row, created = await self._store.create_pending(run, [fire_event(run)])
        if created:
            self._notify()
        return await self._outcome(row.id, automation)

    async def _outcome(self, run_id: str, automation: str) -> Any:
        async with self._watchers.watch(run_id) as wake:
            while True:
                row = await self._store.get(run_id)
                if row is None:
                    raise ChildRunFailed(f"run {run_id} of {automation!r} disappeared")
                if row.status in TERMINAL:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._recheck)
                wake.clear()
        if row.status != "succeeded":
            error = row.error or {}
            raise ChildRunFailed(
                f"run {run_id} of {automation!r} {row.status}: {error.get('message', '')}"
            )
        plan = [r for r in latest_records(list(row.steps)) if r.get("phase", "plan") == "plan"]
        done = [r for r in plan if r.get("status") == "succeeded"]
        return {"run_id": run_id, "output": done[-1].get("output") if done else None}
