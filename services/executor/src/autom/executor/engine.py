"""The step engine: dispatch inputs, run steps in order with retries and timeouts, record all."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import jsonschema
from jsonschema import Draft202012Validator
from opentelemetry.trace import StatusCode

from autom.api.events.v1 import events_pb2
from autom.core import bus, metrics, tracing
from autom.core.errors import Unavailable
from autom.core.protoconv import to_timestamp
from autom.executor.actions.base import Action, ActionContext, Actions, Budget, ChildRuns
from autom.executor.domain.inputs import build_inputs, runtime_keys, trigger_inputs
from autom.executor.domain.policy import (
    DEFAULT_STEP_TIMEOUT_SECONDS,
    RetryPolicy,
    retry_policy,
    run_timeout,
    step_timeout,
)
from autom.executor.domain.storable import scrub, unstorable
from autom.executor.errors import (
    ActionNotFound,
    DispatchError,
    LeaseLost,
    OutputNotStorable,
    ParamsInvalid,
    RunCancelled,
    RunTimeout,
    SecretError,
    StepError,
    StepTimeout,
    TemplateFailure,
    error_from_exception,
)
from autom.executor.sources import SecretSource, Snapshot
from autom.executor.store import Event, RunRow, RunStore
from autom.templating import (
    TemplateError,
    evaluate_condition,
    iter_templates,
    redact,
    render_value,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_SECRET_REF = re.compile(
    r"secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])"
)
# Actions that never block: awaited inline, without a task of their own.
INLINE_ACTIONS = frozenset({"transform", "log"})
# Actions without effects outside the run: no started marker before they are called.
EFFECT_FREE_ACTIONS = INLINE_ACTIONS | {"wait"}
SECRETS_RETRY_MAX_SECONDS = 30.0
# Actions bounded by their own terms (render cap, the requested duration): no default timeout.
SELF_BOUNDED_ACTIONS = INLINE_ACTIONS | {"wait"}


def now() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


def _observe_run(state: RunState, status: str) -> None:
    """Count a run that reached a terminal status, and time it from its start."""
    row = state.row
    start = row.started_at or row.created_at
    metrics.RUNS.labels(status).inc()
    if start is not None:
        elapsed = max(0.0, (now() - start).total_seconds())
        metrics.RUN_DURATION.labels(status).observe(elapsed)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime."""
    return dt.isoformat() if dt is not None else None


@lru_cache(maxsize=128)
def _params_validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


# (message, path) of the first errors of params against an action's params schema.
ParamsErrors = tuple[tuple[str, tuple[str | int, ...]], ...]


def _params_errors(schema_json: str, params: Any) -> ParamsErrors:
    errors = _params_validator(schema_json).iter_errors(params)
    return tuple((e.message, tuple(e.absolute_path)) for e in itertools.islice(errors, 5))


@lru_cache(maxsize=4096)
def _literal_params_errors(schema_json: str, params_json: str) -> ParamsErrors:
    """`_params_errors` of params without templates: the same on every run of a version."""
    return _params_errors(schema_json, json.loads(params_json))


def secret_names(value: Any) -> set[str]:
    """Names of `secrets.NAME` / `secrets['NAME']` referenced anywhere inside a value."""
    text = value if isinstance(value, str) else json.dumps(value)
    return {a or b for a, b in _SECRET_REF.findall(text)}


@dataclass
class RunState:
    """A run this worker holds the lease on, while it executes."""

    row: RunRow
    token: str
    snapshot: Snapshot | None
    budget: Budget = field(default_factory=lambda: Budget(None))
    # Set by the worker to stop the run: RunCancelled or LeaseLost.
    interrupt: BaseException | None = None
    current: asyncio.Future[Any] | None = None
    secrets: dict[str, str] | None = None
    # True once the terminal state is committed (the lease is released with it).
    finished: bool = False
    # True while the terminal write is in flight: a heartbeat may already see the lease
    # released by it, which is no loss (the write itself reports a lease found gone).
    finishing: bool = False
    # The step record being committed while the next step already runs.
    writing: asyncio.Future[None] | None = None

    @property
    def run_id(self) -> str:
        """The run id."""
        return str(self.row.id)

    def stop(self, reason: BaseException) -> None:
        """Interrupt the current step (cancel its task) and any step after it."""
        if self.interrupt is None:
            self.interrupt = reason
        if self.current is not None and not self.current.done():
            self.current.cancel()


@dataclass
class _Progress:
    """A run under way: its template context and what its next write carries besides a record."""

    ctx: dict[str, Any]
    execution: dict[str, Any]
    # Dispatched inputs not written yet (first write only) and events waiting for a write.
    inputs: dict[str, Any] | None
    events: list[Event]

    def note(self, step: dict[str, Any], record: dict[str, Any]) -> None:
        """Make a finished step's result visible to the templates of the steps after it."""
        self.ctx["steps"][step["id"]] = {"output": record["output"], "status": record["status"]}

    def take(self) -> tuple[dict[str, Any] | None, list[Event]]:
        """The inputs and events for the write about to happen; nothing is left to carry."""
        taken = self.inputs, self.events
        self.inputs, self.events = None, []
        return taken


@dataclass
class _StepToolCalls:
    """The tool-call log of one agent step, in executor.tool_calls under the run's lease."""

    store: RunStore
    state: RunState
    step_id: str
    attempt: int
    lease: float

    async def completed(self) -> dict[int, dict[str, Any]]:
        """Calls of the step that succeeded before, by number."""
        found = await self.store.tool_calls(self.state.run_id, self.step_id)
        return {c["call_n"]: c for c in found.get(self.step_id, []) if c["status"] == "succeeded"}

    async def begin(self, call_n: int, name: str, arguments: Any) -> None:
        """Persist that the tool is about to be called."""
        if not await self.store.begin_tool_call(
            self.state.run_id,
            self.state.token,
            step_id=self.step_id,
            call_n=call_n,
            name=name,
            attempt=self.attempt,
            arguments=scrub(arguments),
            lease_seconds=self.lease,
        ):
            raise LeaseLost(self.state.run_id)

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
        """Persist the call's outcome."""
        if not await self.store.finish_tool_call(
            self.state.run_id,
            self.state.token,
            step_id=self.step_id,
            call_n=call_n,
            status=status,
            result=scrub(result),
            error=None if error is None else scrub(error),
            name=name,
            attempt=self.attempt,
            arguments=scrub(arguments),
        ):
            raise LeaseLost(self.state.run_id)


@dataclass(frozen=True)
class _Call:
    """How each attempt of a step calls its action."""

    action: Action
    params: Any
    # The step timeout; the run deadline (monotonic) may cut an attempt shorter.
    limit: float | None
    # Awaited on the loop without a task of its own (no timeout applies).
    inline: bool
    deadline: float | None


class Engine:
    """Executes a leased run to a terminal state, recording every step as it finishes."""

    def __init__(
        self,
        *,
        store: RunStore,
        actions: Actions,
        secrets: SecretSource,
        lease_seconds: float,
        on_events: Callable[[], None] = lambda: None,
        on_committed: Callable[[str], None] = lambda run_id: None,
        default_step_timeout: float = DEFAULT_STEP_TIMEOUT_SECONDS,
        child_runs: ChildRuns | None = None,
    ) -> None:
        self._child_runs = child_runs
        self._schemas: dict[str, str] = {}
        self._store = store
        self._actions = actions
        self._secrets = secrets
        self._lease = lease_seconds
        self._on_events = on_events
        # Called with the run id once a change with events committed: watchers in this
        # process need not wait for the event's trip through the outbox and NATS.
        self._on_committed = on_committed
        self._default_step_timeout = default_step_timeout

    # ---- events -------------------------------------------------------------------------
    def event(
        self,
        state: RunState,
        kind: str,
        status: str,
        step: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> Event:
        """A run event for the outbox (msg id from a business key, so replays dedupe), of
        now unless `at` says when it happens."""
        row = state.row
        types = {
            "started": events_pb2.RUN_EVENT_TYPE_STARTED,
            "step_finished": events_pb2.RUN_EVENT_TYPE_STEP_FINISHED,
            "finished": events_pb2.RUN_EVENT_TYPE_FINISHED,
        }
        if step is not None:
            event_id = f"{row.id}:step:{step['phase']}:{step['step_id']}"
        else:
            event_id = f"{row.id}:{kind}"
        message = events_pb2.RunEvent(
            event_id=event_id,
            type=types[kind],
            run_id=row.id,
            fire_id=row.fire_id,
            workspace_id=row.workspace_id,
            automation_id=row.automation_id,
            status=status,
            step_id=step["step_id"] if step else "",
            step_status=step["status"] if step else "",
            occur_time=to_timestamp(at or now()),
        )
        return Event(
            bus.run_event_subject(kind, row.fire_id), event_id, message.SerializeToString()
        )

    async def hold(self, state: RunState, until: Awaitable[Any]) -> None:
        """Wait as the run: a cancel ends the wait early (the run then stops at its first
        step), a lost lease raises LeaseLost."""
        with contextlib.suppress(RunCancelled):
            await self._call(state, until, None)

    def notify(self) -> None:
        """Wake the outbox relay (rows were committed outside `_write`)."""
        self._on_events()

    def _record(self, state: RunState, **kwargs: Any) -> None:
        """Commit a step record in the background, ordered after the one before it.

        The next step starts while its predecessor's record commits; a crash in between only
        re-runs steps (at least once), and the terminal write waits for every record.
        """
        previous = state.writing

        async def chained() -> None:
            if previous is not None:
                await previous
            await self._write(state, **kwargs)

        state.writing = asyncio.ensure_future(chained())

    async def _flush(self, state: RunState) -> None:
        """Wait for the background record write (raising LeaseLost if it found the lease gone)."""
        writing, state.writing = state.writing, None
        if writing is not None:
            await writing

    async def _write(self, state: RunState, **kwargs: Any) -> None:
        ok = await self._store.write(state.run_id, state.token, lease_seconds=self._lease, **kwargs)
        if not ok:
            raise LeaseLost(state.run_id)
        if kwargs.get("events"):
            # Watchers first: a client waiting on this run reads it before the relay's pass.
            self._on_committed(state.run_id)
            self._on_events()

    async def finish(
        self,
        state: RunState,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        steps: list[dict[str, Any]] | None = None,
        events: list[Event] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Commit the terminal state (with any last step records) and the finished event."""
        all_events = list(events or [])
        all_events += [self.event(state, "step_finished", status, s) for s in steps or []]
        all_events.append(self.event(state, "finished", status))
        await self._flush(state)
        await self._terminal_write(
            state,
            steps=steps or [],
            status=status,
            error=error,
            inputs=inputs,
            cost_usd=state.budget.spent_usd,
            events=all_events,
        )
        _observe_run(state, status)

    async def abort(self, state: RunState, error: StepError) -> None:
        """Fail the run after a fault no redelivery can fix (records not yet written are lost)."""
        writing, state.writing = state.writing, None
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing
        await self._terminal_write(
            state,
            status="failed",
            error=scrub(error.detail()),
            cost_usd=state.budget.spent_usd,
            events=[self.event(state, "finished", "failed")],
        )
        _observe_run(state, "failed")

    async def _terminal_write(self, state: RunState, **kwargs: Any) -> None:
        state.finishing = True
        try:
            await self._write(state, **kwargs)
        finally:
            state.finishing = False
        state.finished = True

    # ---- run ----------------------------------------------------------------------------
    def context(self, state: RunState, inputs: dict[str, Any]) -> dict[str, Any]:
        """The template context of the run (secrets added when first needed)."""
        row = state.row
        return {
            "inputs": inputs,
            "trigger": {
                "type": row.trigger_type,
                "id": row.trigger_id,
                "fired_at": iso(row.fired_at),
                "scheduled_for": iso(row.scheduled_for),
                "last_fired_at": iso(row.last_fired_at),
                "payload": row.fire_inputs or {},
            },
            "steps": {},
            "run": {
                "id": row.id,
                "automation_id": row.automation_id,
                "attempt": row.attempt,
                "workspace_id": row.workspace_id,
                "principal": row.principal,
            },
            "secrets": {},
        }

    async def execute(
        self,
        state: RunState,
        *,
        pending_events: list[Event],
        start: Callable[[], Awaitable[list[Event] | None]] | None = None,
    ) -> str:
        """Run to a terminal state; returns it. Raises LeaseLost when another worker took over.

        `start` (a run claimed ahead of its time) is awaited once the run is prepared, just
        before its first step: the events to write with that step, or None when it finished
        the run itself (skipped).
        """
        if state.snapshot is None:
            await self._fail_dispatch(state, pending_events)
            return "failed"
        definition = state.snapshot.definition
        execution = definition.get("execution") or {}
        budget = execution.get("budget_usd")
        state.budget = Budget(
            float(budget) if budget is not None else None, float(state.row.cost_usd or 0.0)
        )
        resolved = await self._resolve_inputs(state, definition, pending_events)
        if resolved is None:
            return "failed"
        inputs, inputs_to_write = resolved
        run = _Progress(self.context(state, inputs), execution, inputs_to_write, [*pending_events])
        done = self._restore_done(state, run.ctx)
        plan: list[dict[str, Any]] = list(definition.get("plan") or [])
        remaining = [(i, s) for i, s in enumerate(plan) if s.get("id") not in done]
        if start is not None:
            started = await start()
            if started is None:
                return "skipped"
            run.events += started
        deadline = self._deadline(state, execution)
        row = state.row
        if not row.steps and remaining and row.trigger_type == "schedule" and row.scheduled_for:
            # The run's first step starts now (a resumed run started earlier: not counted).
            lag = (now() - row.scheduled_for).total_seconds()
            metrics.FIRE_START_LAG.observe(max(0.0, lag))
        last, failure = await self._run_plan(state, run, remaining, deadline)
        if failure is None:
            await self.finish(
                state,
                "succeeded",
                steps=[last] if last else [],
                events=run.events,
                inputs=run.inputs,
            )
            return "succeeded"
        run_status = self._run_status(failure)
        run_error = self._run_error(state, failure, last)
        on_failure = list(execution.get("on_failure") or [])
        if on_failure and run_status in ("failed", "timed_out"):
            last = await self._run_on_failure(state, run, on_failure, last, run_error)
        await self.finish(
            state,
            run_status,
            error=run_error,
            steps=[last] if last else [],
            events=run.events,
            inputs=run.inputs,
        )
        return run_status

    async def _fail_dispatch(self, state: RunState, pending_events: list[Event]) -> None:
        """Fail a run whose automation version does not exist (nothing to execute)."""
        row = state.row
        await self.finish(
            state,
            "failed",
            error=DispatchError(
                f"automation {row.automation_id} version {row.automation_version or 'latest'} "
                "does not exist in the run's workspace"
            ).detail(),
            events=pending_events,
        )

    async def _resolve_inputs(
        self, state: RunState, definition: dict[str, Any], pending_events: list[Event]
    ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """The run's inputs and those still to be written; None when it failed over them."""
        row = state.row
        if row.inputs is not None:
            return dict(row.inputs), None
        supplied = dict(row.fire_inputs or {})
        try:
            supplied = {**trigger_inputs(definition, row.trigger_id), **supplied}
            runtime = runtime_keys(row.fired_at, row.scheduled_for, row.last_fired_at)
            inputs = build_inputs(definition, supplied, runtime)
            problem = unstorable(inputs, "inputs")
            if problem:
                raise DispatchError(f"the run's inputs cannot be stored: {problem}")
        except Exception as exc:
            # Any failure here is the same on every delivery: fail now, never loop.
            bad = exc if isinstance(exc, DispatchError) else None
            bad = bad or DispatchError(
                f"cannot resolve the run's inputs: {type(exc).__name__}: {exc}"
            )
            await self.finish(
                state,
                "failed",
                error=scrub(bad.detail()),
                events=pending_events,
                inputs=scrub(supplied),
            )
            return None
        return inputs, inputs

    @staticmethod
    def _restore_done(state: RunState, ctx: dict[str, Any]) -> set[str]:
        """Ids of plan steps a previous attempt finished; their results go into `ctx`."""
        records: list[dict[str, Any]] = list(state.row.steps or [])
        done = {
            r["step_id"]: r
            for r in records
            if r.get("phase", "plan") == "plan" and r.get("status") in ("succeeded", "skipped")
        }
        for r in done.values():
            ctx["steps"][r["step_id"]] = {"output": r.get("output"), "status": r["status"]}
        return set(done)

    @staticmethod
    def _deadline(state: RunState, execution: dict[str, Any]) -> float | None:
        """The monotonic time the run times out at (counted from its first start), if any."""
        timeout = run_timeout(execution)
        started = state.row.started_at or now()
        if timeout is None:
            return None
        return time.monotonic() + max(0.0, timeout - (now() - started).total_seconds())

    async def _run_plan(
        self,
        state: RunState,
        run: _Progress,
        remaining: list[tuple[int, dict[str, Any]]],
        deadline: float | None,
    ) -> tuple[dict[str, Any] | None, StepError | None]:
        """Run the plan's remaining steps: the last record (left to the terminal write), and
        the failure that stopped the plan, if any."""
        for n, (index, step) in enumerate(remaining):
            # Inline steps never await anything real: yield so heartbeats keep running.
            await asyncio.sleep(0)
            if state.writing is not None and state.writing.done():
                await self._flush(state)
            record, error = await self._traced_step(
                state, step, f"plan[{index}]", "plan", run.ctx, run.execution, deadline
            )
            run.note(step, record)
            if error is not None or n == len(remaining) - 1:
                return record, error
            inputs, events = run.take()
            self._record(
                state,
                steps=[record],
                status="running",
                inputs=inputs,
                cost_usd=state.budget.spent_usd,
                events=[*events, self.event(state, "step_finished", "running", record)],
            )
        return None, None

    @staticmethod
    def _run_error(
        state: RunState, failure: StepError, last: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The run's error: the failure, named after the step it stopped at."""
        step_id = last["step_id"] if last else "?"
        run_error: dict[str, Any] = scrub(
            {**failure.detail(), "message": f"step {step_id}: {failure.message}"}
        )
        if state.secrets:
            run_error = redact(run_error, state.secrets)
        return run_error

    async def _run_on_failure(
        self,
        state: RunState,
        run: _Progress,
        on_failure: list[dict[str, Any]],
        failed: dict[str, Any] | None,
        run_error: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Record the failed step, then run the on_failure steps; returns the last record."""
        assert failed is not None
        await self._flush(state)
        inputs, events = run.take()
        await self._write(
            state,
            steps=[failed],
            inputs=inputs,
            cost_usd=state.budget.spent_usd,
            events=[*events, self.event(state, "step_finished", "running", failed)],
        )
        run.ctx["error"] = run_error
        for index, step in enumerate(on_failure):
            await asyncio.sleep(0)
            record, _ = await self._traced_step(
                state,
                step,
                f"execution.on_failure[{index}]",
                "on_failure",
                run.ctx,
                run.execution,
                None,
            )
            run.note(step, record)
            if index == len(on_failure) - 1:
                return record
            await self._flush(state)
            await self._write(
                state,
                steps=[record],
                cost_usd=state.budget.spent_usd,
                events=[self.event(state, "step_finished", "running", record)],
            )
        return None

    @staticmethod
    def _redactor(state: RunState) -> Callable[[Any], Any]:
        secrets = state.secrets
        if not secrets:
            return lambda value: value
        return lambda value: redact(value, secrets)

    @staticmethod
    def _run_status(error: StepError) -> str:
        if isinstance(error, RunTimeout):
            return "timed_out"
        if isinstance(error, RunCancelled):
            return "cancelled"
        return "failed"

    # ---- steps --------------------------------------------------------------------------
    async def _ensure_secrets(self, state: RunState, names: set[str]) -> dict[str, str]:
        if state.secrets is None:
            state.secrets = {}
        missing = names - state.secrets.keys()
        if missing:
            row = state.row
            delay = 0.5
            while True:
                try:
                    resolved = await self._secrets.resolve(
                        row.workspace_id, sorted(missing), row.id
                    )
                    break
                except Unavailable:
                    # An outage of definitions is not a verdict: wait (the heartbeat keeps the
                    # lease; cancellation interrupts the sleep).
                    log.warning("secrets unavailable; retrying in %.1fs", delay)
                    await self._call(state, asyncio.sleep(delay), None)
                    delay = min(delay * 2, SECRETS_RETRY_MAX_SECONDS)
                except Exception as exc:
                    raise SecretError(
                        f"cannot resolve secrets {', '.join(sorted(missing))}: "
                        f"{getattr(exc, 'message', None) or type(exc).__name__}",
                        retryable=False,
                    ) from exc
            absent = missing - resolved.keys()
            if absent:
                raise SecretError(f"unknown secrets: {', '.join(sorted(absent))}")
            state.secrets.update(resolved)
        return state.secrets

    async def _call(self, state: RunState, awaitable: Awaitable[T], timeout: float | None) -> T:
        """Await an attempt as a task the worker can cancel; raise the worker's interrupt."""
        task = asyncio.ensure_future(awaitable)
        state.current = task
        try:
            if timeout is None:
                return await task
            return await asyncio.wait_for(task, timeout)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if state.interrupt is not None and (me is None or me.cancelling() == 0):
                raise state.interrupt from None
            raise
        finally:
            state.current = None

    async def _mark_started(self, state: RunState, record: dict[str, Any]) -> None:
        """Persist that the action is about to be called; a resume then knows it replays."""
        key = f"{record['phase']}:{record['step_id']}"
        if key in state.row.started_steps:
            # Started before this attempt of the run: same idempotency key, marked as a replay.
            record["replayed"] = True
            log.warning("resuming step %s as a replay (it started before)", record["step_id"])
            return
        if not await self._store.mark_started(state.run_id, state.token, key, self._lease):
            raise LeaseLost(state.run_id)

    async def _traced_step(
        self,
        state: RunState,
        step: dict[str, Any],
        path: str,
        phase: str,
        ctx: dict[str, Any],
        execution: dict[str, Any],
        deadline: float | None,
    ) -> tuple[dict[str, Any], StepError | None]:
        """run_step inside a span of the run's trace (its actions' calls are its children),
        timed into the step-duration histogram."""
        began = time.monotonic()
        with tracing.span(
            f"step {step.get('id', '')}",
            attributes={
                "autom.step_id": str(step.get("id", "")),
                "autom.action": str(step.get("action", "")),
                "autom.step.phase": phase,
            },
        ) as span:
            record, error = await self.run_step(state, step, path, phase, ctx, execution, deadline)
            metrics.STEP_DURATION.labels(record["action"], record["status"]).observe(
                time.monotonic() - began
            )
            span.set_attribute("autom.step.status", record["status"])
            span.set_attribute("autom.step.attempts", record["attempts"])
            if error is not None:
                span.set_status(StatusCode.ERROR, error.message[:200])
            return record, error

    async def run_step(
        self,
        state: RunState,
        step: dict[str, Any],
        path: str,
        phase: str,
        ctx: dict[str, Any],
        execution: dict[str, Any],
        deadline: float | None,
    ) -> tuple[dict[str, Any], StepError | None]:
        """Run one step with its retries; returns its record and its failure (if any)."""
        record = self._new_record(step, phase)
        if isinstance(state.interrupt, LeaseLost):
            raise state.interrupt
        if isinstance(state.interrupt, RunCancelled):
            return self._done(state, record, "cancelled", state.interrupt)
        try:
            prepared = await self._prepare_step(state, step, path, ctx, record)
        except TemplateError as exc:
            failure = TemplateFailure(exc.message, fields=[exc.path])
            return self._done(state, record, "failed", failure)
        except StepError as exc:
            return self._done(state, record, "failed", exc)
        except jsonschema.SchemaError as exc:
            return self._done(state, record, "failed", ParamsInvalid(str(exc.message)))
        if prepared is None:
            return self._done(state, record, "skipped")
        policy = retry_policy(execution, step)
        call = self._step_call(execution, step, *prepared, deadline)
        if call.action.spec.type not in EFFECT_FREE_ACTIONS:
            await self._mark_started(state, record)
        error: StepError | None = None
        for attempt in range(1, policy.attempts + 1):
            outcome = await self._attempt(state, record, call, attempt)
            if not isinstance(outcome, StepError):
                return outcome
            error = outcome
            if not error.retryable or attempt == policy.attempts:
                break
            try:
                await self._retry_delay(state, policy, attempt, deadline)
            except RunCancelled as exc:
                return self._done(state, record, "cancelled", exc)
        assert error is not None
        return self._done(
            state, record, "timed_out" if isinstance(error, StepTimeout) else "failed", error
        )

    def _step_call(
        self,
        execution: dict[str, Any],
        step: dict[str, Any],
        action: Action,
        params: Any,
        deadline: float | None,
    ) -> _Call:
        """How the step's attempts call its action: timeout, and whether inline."""
        kind = action.spec.type
        limit = step_timeout(
            execution, step, None if kind in SELF_BOUNDED_ACTIONS else self._default_step_timeout
        )
        inline = kind in INLINE_ACTIONS and limit is None and deadline is None
        return _Call(action, params, limit, inline, deadline)

    @staticmethod
    def _new_record(step: dict[str, Any], phase: str) -> dict[str, Any]:
        """The record of a step starting now."""
        return {
            "step_id": step.get("id", ""),
            "action": step.get("action", ""),
            "phase": phase,
            "status": "running",
            "attempts": 0,
            "started_at": iso(now()),
            "finished_at": None,
            "params": None,
            "output": None,
            "error": None,
            "cost_usd": 0.0,
        }

    @staticmethod
    def _done(
        state: RunState, record: dict[str, Any], status: str, error: StepError | None = None
    ) -> tuple[dict[str, Any], StepError | None]:
        """Finish the record (storable, secrets redacted); returns it with the step's failure."""
        problem = unstorable(record["output"], "output")
        if problem:
            record["output"] = None
            status = "failed"
            error = OutputNotStorable(f"the step's output cannot be recorded: {problem}")
        record["status"] = status
        record["finished_at"] = iso(now())
        record["params"] = scrub(record["params"])
        if error is not None:
            detail = error.detail()
            record["error"] = redact(detail, state.secrets) if state.secrets else detail
        if state.secrets and record["output"] is not None:
            record["output"] = redact(record["output"], state.secrets)
        if record["error"] is not None:
            record["error"] = scrub(record["error"])
        return record, error

    async def _prepare_step(
        self,
        state: RunState,
        step: dict[str, Any],
        path: str,
        ctx: dict[str, Any],
        record: dict[str, Any],
    ) -> tuple[Action, Any] | None:
        """The step's action and rendered, validated params; None when `when` skips it."""
        names = secret_names([step.get("params"), step.get("when")])
        if names:
            ctx["secrets"] = dict(await self._ensure_secrets(state, names))
        when = step.get("when")
        # Renders run in a thread (up to the render cap each) so the loop stays live.
        if when and not await asyncio.to_thread(
            evaluate_condition, str(when), ctx, path=f"{path}.when"
        ):
            return None
        action = self._actions.get(str(step.get("action", "")))
        if action is None:
            raise ActionNotFound(
                f"unknown action {step.get('action')!r}", fields=[f"{path}.action"]
            )
        raw_params = step.get("params") or {}
        literal = None
        if next(iter_templates(raw_params), None) is None:
            # Nothing to render: a copy (the definition's own stays as it is), checked once
            # per distinct params rather than on every run.
            literal = json.dumps(raw_params)
            params = json.loads(literal)
        else:
            params = await asyncio.to_thread(render_value, raw_params, ctx, path=f"{path}.params")
        record["params"] = redact(params, state.secrets) if state.secrets else params
        if action.spec.params_schema:
            schema_json = self._schema_json(action)
            errors = (
                _literal_params_errors(schema_json, literal)
                if literal is not None
                else _params_errors(schema_json, params)
            )
            if errors:
                raise ParamsInvalid(
                    "params do not match the action's schema: "
                    + "; ".join(message for message, _ in errors),
                    fields=[
                        f"{path}.params" + "".join(f".{p}" for p in where) for _, where in errors
                    ],
                )
        return action, params

    def _schema_json(self, action: Action) -> str:
        """The action's params schema as the validators' cache key (computed once)."""
        found = self._schemas.get(action.spec.type)
        if found is None:
            found = self._schemas[action.spec.type] = json.dumps(
                action.spec.params_schema, sort_keys=True
            )
        return found

    async def _attempt(
        self, state: RunState, record: dict[str, Any], call: _Call, attempt: int
    ) -> tuple[dict[str, Any], StepError | None] | StepError:
        """One call of the action: the step's final result, or the error of a failed attempt."""
        record["attempts"] = attempt
        kind = call.action.spec.type
        metrics.STEP_ATTEMPTS.labels(kind).inc()
        if attempt > 1:
            metrics.STEP_RETRIES.labels(kind).inc()
        actx = ActionContext(
            run_id=state.run_id,
            step_id=record["step_id"],
            attempt=attempt,
            workspace_id=state.row.workspace_id,
            automation_id=state.row.automation_id,
            principal=state.row.principal,
            budget=state.budget,
            log=log,
            redact=self._redactor(state),
            chain_depth=state.row.chain_depth,
        )
        if kind == "agent_task":
            actx.tool_calls = _StepToolCalls(
                self._store, state, record["step_id"], attempt, self._lease
            )
            actx.child_runs = self._child_runs
        timeout = call.limit
        run_bound = False
        if call.deadline is not None:
            left = call.deadline - time.monotonic()
            if left <= 0:
                return self._done(state, record, "timed_out", RunTimeout("the run timeout elapsed"))
            if timeout is None or left < timeout:
                timeout, run_bound = left, True
        try:
            if call.inline:
                output = await call.action.handler(call.params, actx)
            else:
                output = await self._call(state, call.action.handler(call.params, actx), timeout)
            record["output"] = output
            return self._done(state, record, "succeeded")
        except TimeoutError:
            if run_bound:
                return self._done(state, record, "timed_out", RunTimeout("the run timeout elapsed"))
            limit = call.limit
            return StepTimeout(f"attempt {attempt} exceeded the step timeout of {limit:g}s")
        except RunCancelled as exc:
            return self._done(state, record, "cancelled", exc)
        except LeaseLost:
            raise
        except TemplateError as exc:
            return TemplateFailure(exc.message, fields=[exc.path])
        except Exception as exc:
            return error_from_exception(exc)
        finally:
            self._charge(state, record, actx)

    @staticmethod
    def _charge(state: RunState, record: dict[str, Any], actx: ActionContext) -> None:
        """Add an attempt's cost and usage to the record and the run's budget."""
        if actx.cost_usd:
            state.budget.spent_usd += actx.cost_usd
            record["cost_usd"] += actx.cost_usd
        if actx.usage:
            usage = record.setdefault("usage", {})
            for k, v in actx.usage.items():
                usage[k] = usage.get(k, 0) + v

    async def _retry_delay(
        self, state: RunState, policy: RetryPolicy, attempt: int, deadline: float | None
    ) -> None:
        """Wait before the next attempt, never past the run deadline (RunCancelled stops it)."""
        delay = policy.delay(attempt)
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        if delay > 0:
            await self._call(state, asyncio.sleep(delay), None)
