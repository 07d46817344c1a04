"""The fire consumer: claim the run for a fire, execute it under a lease, ack when terminal."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind

from autom.api.events.v1 import events_pb2
from autom.core import bus, tracing
from autom.core.errors import NotFound, Unavailable, ValidationFailed
from autom.core.logging import log_context
from autom.core.protoconv import from_timestamp, struct_to_dict
from autom.executor.concurrency import Concurrency
from autom.executor.deadletters import DeadLetters
from autom.executor.domain.storable import unstorable
from autom.executor.engine import Engine, RunState
from autom.executor.errors import LeaseLost, RunAbandoned, RunCancelled, StepError
from autom.executor.quotas import RunQuotas, quota_error
from autom.executor.sources import DefinitionSource, Snapshot
from autom.executor.store import TERMINAL, Event, NewRun, RunRow, RunStore

log = logging.getLogger(__name__)

DURABLE = "executor"
FIRES_SUBJECT = "automations.fires.>"


def new_run_from_fire(fire: events_pb2.FireEvent, run_id: str) -> NewRun:
    """Row values of the run a fire creates."""
    return NewRun(
        id=run_id,
        fire_id=fire.fire_id,
        workspace_id=fire.workspace_id,
        automation_id=fire.automation_id,
        automation_version=fire.automation_version,
        trigger_type=fire.trigger_type or "schedule",
        trigger_id=fire.trigger_id,
        fire_inputs=struct_to_dict(fire.inputs),
        scheduled_for=from_timestamp(fire.scheduled_for)
        if fire.HasField("scheduled_for")
        else None,
        fired_at=from_timestamp(fire.fired_time) if fire.HasField("fired_time") else None,
        last_fired_at=(
            from_timestamp(fire.last_fired_time) if fire.HasField("last_fired_time") else None
        ),
        principal=fire.principal,
        retry_of_run_id=fire.retry_of_run_id,
        resume_from_step=fire.resume_from_step,
    )


# Column widths of executor.runs: a longer value can never be stored.
_WIDTHS = {"fire_id": 255, "workspace_id": 64, "automation_id": 64, "trigger_type": 32}
_WIDTHS |= {"trigger_id": 128, "principal": 255, "retry_of_run_id": 64, "resume_from_step": 128}

# Failures that come back the same on every attempt: retrying the fire cannot help, so the
# run fails with the reason. Anything else (connections, timeouts, peers) is retried forever.
_DETERMINISTIC: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    TypeError,
    ValueError,
    KeyError,
    AttributeError,
    AssertionError,
    StepError,
)


class Unstorable(Exception):
    """A decodable fire whose run can never be stored: treated as poison."""


def is_transient(exc: BaseException) -> bool:
    """True when the same work may succeed later (an outage), False for a deterministic fault."""
    return not isinstance(exc, _DETERMINISTIC)


def fault_error(exc: BaseException) -> StepError:
    """The run error of a deterministic fault met while executing or recording the run."""
    kind = "RecordNotStorable" if isinstance(exc, asyncpg.DataError) else "InternalError"
    return StepError(f"{type(exc).__name__}: {exc}", retryable=False, type_name=kind)


def decode_fire(data: bytes) -> events_pb2.FireEvent:
    """The fire event; ValueError/DecodeError when it is not one or can never become a run."""
    fire = events_pb2.FireEvent.FromString(data)
    if not fire.fire_id or not fire.automation_id or not fire.workspace_id:
        raise ValueError("fire event lacks fire_id, automation_id or workspace_id")
    for name, width in _WIDTHS.items():
        if len(getattr(fire, name)) > width:
            raise ValueError(f"{name} is longer than {width} characters")
    problem = unstorable(struct_to_dict(fire.inputs), "inputs")
    if problem:
        raise ValueError(f"fire inputs cannot be stored: {problem}")
    return fire


# A pause, archive or delete seen while a fire handed over ahead waited for its time.
_STOPPED_AHEAD = StepError(
    "the automation was paused, archived or deleted before the fire's time",
    retryable=False,
    type_name="AutomationStopped",
)


def _ahead(fire: events_pb2.FireEvent) -> datetime | None:
    """The fire's time when it was handed over before it (the scheduler's handover)."""
    if not fire.HasField("fired_time"):
        return None
    at = from_timestamp(fire.fired_time)
    return at if at > datetime.now(UTC) else None


class Worker:
    """Consumes fires; at most max_in_flight runs at once; heartbeats the runs it holds.

    A fire handed over before its time (`fired_time` ahead, see the scheduler's handover) is
    checked and claimed at once, and its run starts on time: a burst of same-second fires
    does its round trips before the instant. Up to max_early_fires such runs wait and run
    besides the max_in_flight others. Its message stays un-acked meanwhile.
    """

    def __init__(
        self,
        *,
        store: RunStore,
        engine: Engine,
        definitions: DefinitionSource,
        concurrency: Concurrency,
        lease_seconds: float,
        ack_wait_seconds: float,
        cancel_poll_seconds: float,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 30.0,
        max_attempts: int = 50,
        dead_letters: DeadLetters | None = None,
        owner: str | None = None,
        quotas: RunQuotas | None = None,
        max_early_fires: int = 0,
    ) -> None:
        self._quotas = quotas
        self._max_early_fires = max_early_fires
        self._early: set[asyncio.Future[None]] = set()
        self._gates: dict[datetime, asyncio.Future[None]] = {}
        # Bounded below the lease and ack wait: a clock ahead of ours must not outlast them.
        self._max_early = min(lease_seconds, ack_wait_seconds) / 3
        self._store = store
        self._engine = engine
        self._definitions = definitions
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._ack_wait = ack_wait_seconds
        self._backoff = bus.Backoff(backoff_initial_seconds, backoff_max_seconds)
        self._max_attempts = max_attempts
        self._dead_letters = dead_letters
        self._poll = cancel_poll_seconds
        self.owner = owner or f"executor-{uuid.uuid4().hex[:12]}"
        self.active: dict[str, tuple[RunState, Msg | None]] = {}

    # ---- cancellation -------------------------------------------------------------------
    def cancel_local(self, run_id: str, reason: str) -> bool:
        """Stop a run this process executes; True when it was here."""
        held = self.active.get(run_id)
        if held is None:
            return False
        held[0].stop(RunCancelled(reason or "cancelled"))
        return True

    async def heartbeat(self, stop: asyncio.Event) -> None:
        """Poll cancellation flags often; extend leases and ack deadlines well before expiry."""
        interval = min(self._lease, self._ack_wait) / 3
        next_extend = time.monotonic() + interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._poll)
            try:
                if time.monotonic() >= next_extend:
                    next_extend = time.monotonic() + interval
                    await self._extend()
                else:
                    ids = list(self.active)
                    for run_id in await self._store.cancel_flags(ids):
                        self.cancel_local(run_id, self._reason(run_id))
            except Exception:
                log.exception("heartbeat failed; will retry")

    def _reason(self, run_id: str) -> str:
        return "cancel requested"

    async def _extend(self) -> None:
        held = dict(self.active)
        leases = {run_id: state.token for run_id, (state, _) in held.items()}
        alive = await self._store.heartbeat(leases, self._lease)
        for run_id, (state, msg) in held.items():
            if state.finished or state.finishing or run_id not in self.active:
                continue
            if run_id not in alive:
                log.warning("lease lost", extra={"run_id": run_id})
                state.stop(LeaseLost(run_id))
                continue
            if alive[run_id]:
                state.stop(RunCancelled("cancel requested"))
            if msg is not None:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    # ---- messages -----------------------------------------------------------------------
    def backoff(self, deliveries: int) -> float:
        """Redelivery delay after a transient failure: doubling per delivery, capped."""
        return self._backoff.delay(deliveries)

    async def handle(self, msg: Msg) -> None:
        """One fire message: ack, nak(backoff) or, only when undecodable, dead letter + term."""
        # Nothing else gives up on a message: an outage of the database, NATS or a peer is
        # retried with capped exponential backoff however long it lasts.
        deliveries = msg.metadata.num_delivered if msg.metadata else 1
        try:
            fire = decode_fire(msg.data)
        except (DecodeError, ValueError) as exc:
            await self._poison(msg, deliveries, f"undecodable fire: {exc}")
            return
        if len(self._early) < self._max_early_fires and _ahead(fire) is not None:
            # Handed over ahead: it waits for its time without holding a consumer slot.
            task = asyncio.ensure_future(self._process_early(msg, fire, deliveries))
            self._early.add(task)
            task.add_done_callback(self._early.discard)
            return
        await self._process(msg, fire, deliveries)

    async def _process_early(self, msg: Msg, fire: events_pb2.FireEvent, deliveries: int) -> None:
        try:
            await self._process(msg, fire, deliveries)
        except asyncio.CancelledError:
            # Stopping before the run was claimed: another worker takes the fire now.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise

    async def _process(self, msg: Msg, fire: events_pb2.FireEvent, deliveries: int) -> None:
        # The run continues the trace the fire's publisher put in the message headers.
        span = tracing.span(
            "executor.run",
            carrier=msg.headers or {},
            kind=SpanKind.CONSUMER,
            attributes={
                "autom.fire_id": fire.fire_id,
                "autom.automation_id": fire.automation_id,
                "messaging.system": "nats",
                "messaging.message.delivery_count": deliveries,
            },
        )
        with log_context(fire_id=fire.fire_id, automation_id=fire.automation_id), span:
            try:
                await self._handle_fire(msg, fire, deliveries)
            except Unstorable as exc:
                await self._poison(msg, deliveries, f"fire cannot be stored as a run: {exc}")
            except Exception as exc:
                delay = self.backoff(deliveries)
                log.warning(
                    "fire failed on delivery %d (%s: %s); retrying in %.1fs",
                    deliveries,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, Unavailable),
                )
                with contextlib.suppress(Exception):
                    await msg.nak(delay=delay)

    async def _poison(self, msg: Msg, deliveries: int, reason: str) -> None:
        log.error("dead-lettering fire message: %s", reason)
        if self._dead_letters is None:
            await msg.term()
            return
        try:
            await self._dead_letters.park(msg, reason, deliveries)
        except Exception:
            log.warning("cannot park the dead letter yet; the message stays for redelivery")
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.backoff(deliveries))
            return
        await msg.term()

    async def _snapshot(self, fire: events_pb2.FireEvent) -> Snapshot | None:
        """The definition, or None when definitions says it does not exist (else raises)."""
        # Any other failure (unavailable, timeout, auth misconfiguration) is not a verdict on
        # the automation: it propagates so the fire is retried rather than the run failed.
        try:
            snapshot = await self._definitions.get(fire.automation_id, fire.automation_version)
        except (NotFound, ValidationFailed):
            return None
        if snapshot.workspace_id != fire.workspace_id:
            return None
        return snapshot

    async def _handle_fire(self, msg: Msg, fire: events_pb2.FireEvent, deliveries: int) -> None:
        snapshot = await self._snapshot(fire)
        new = new_run_from_fire(fire, str(uuid.uuid4()))
        if snapshot is not None:
            new.automation_version = snapshot.version
            if not new.principal and fire.trigger_type not in ("manual",):
                # Scheduled runs act for the automation's creator.
                new.principal = snapshot.created_by
        if await self._refused_by_quota(new, snapshot):
            await msg.ack()
            return
        token = uuid.uuid4().hex
        policy = self._concurrency.policy(snapshot)
        start_at = _ahead(fire)
        try:
            row = await self._store.claim(
                new,
                token=token,
                owner=self.owner,
                lease_seconds=self._lease,
                # A run claimed ahead announces its start when it starts.
                events=[] if start_at else [self._started_event(new)],
                hold=policy != "allow",
                start_at=start_at,
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            raise Unstorable(f"{type(exc).__name__}: {exc}") from exc
        if row is None:
            await self._not_claimed(msg, fire.fire_id)
            return
        state = RunState(row=row, token=token, snapshot=snapshot)
        with log_context(run_id=row.id):
            self.active[row.id] = (state, msg)
            try:
                start: Callable[[], Awaitable[list[Event] | None]] | None = None
                if start_at is None:
                    pending = [] if row.inserted else self._started_if_first(state)
                elif not row.buffered:
                    # The engine prepares the run (inputs, context), then waits for its time.
                    start = functools.partial(self._on_time, state, fire.automation_id, start_at)
                    pending = []
                else:
                    # A concurrency policy admits the run at its time, not before.
                    started = await self._on_time(state, fire.automation_id, start_at)
                    if started is None:
                        await msg.ack()
                        return
                    pending = started
                if row.attempt > self._max_attempts:
                    await self._engine.abort(
                        state,
                        RunAbandoned(
                            f"the run was taken up {row.attempt - 1} times without finishing"
                        ),
                    )
                    await msg.ack()
                    return
                if row.buffered:
                    decision = await self._concurrency.admit(state, policy, self)
                    if decision == "done":
                        await msg.ack()
                        return
                    if decision == "lost":
                        await msg.nak(delay=self._lease)
                        return
                    if decision == "wait":
                        # Waiting holds no slot and no lease: check again after a delay.
                        await msg.nak(delay=self._concurrency.recheck_delay(deliveries))
                        return
                status = await self._engine.execute(state, pending_events=pending, start=start)
                log.info("run %s", status)
            except LeaseLost:
                log.warning("lease lost; another worker owns the run now")
                await msg.nak(delay=self._lease)
                return
            except asyncio.CancelledError:
                # Shutting down mid-run: hand the run over now rather than at lease expiry.
                if not state.finished:
                    await asyncio.shield(self._release(state, msg))
                raise
            except Exception as exc:
                if state.finished or is_transient(exc):
                    # An outage mid-run: hand the run over so the retried delivery resumes it.
                    with contextlib.suppress(Exception):
                        await self._store.release(state.run_id, state.token)
                    raise
                log.exception("run hit a fault no retry can fix; failing it")
                await self._engine.abort(state, fault_error(exc))
            finally:
                self.active.pop(row.id, None)
        await msg.ack()

    async def _on_time(
        self, state: RunState, automation_id: str, start_at: datetime
    ) -> list[Event] | None:
        """Hold a run claimed ahead until it is due: the events its start writes, or None
        when it was skipped instead (its automation stopped meanwhile)."""
        # Built before the wait: runs due at one instant then only go on to their steps. It
        # happens at the fire's time, as the run's recorded start does.
        started = self._started_if_first(state, at=start_at)
        await self._until(state, start_at)
        if self._definitions.stopped(automation_id):
            await self._engine.finish(state, "skipped", error=_STOPPED_AHEAD.detail())
            log.info("run skipped: the automation stopped before the fire's time")
            return None
        return started

    async def _until(self, state: RunState, start_at: datetime) -> None:
        """Hold a run claimed ahead until it is due (a stop of this process releases it).

        Runs due at the same instant share one timer, so they all wake in the same turn of
        the loop rather than one by one between the first ones' next steps.
        """
        gate = self._gates.get(start_at)
        if gate is None:
            loop = asyncio.get_running_loop()
            early = (start_at - datetime.now(UTC)).total_seconds()
            gate = self._gates[start_at] = loop.create_future()

            def open_gate(gate: asyncio.Future[None] = gate) -> None:
                self._gates.pop(start_at, None)
                if not gate.done():
                    gate.set_result(None)

            loop.call_later(min(early, self._max_early), open_gate)
        await self._engine.hold(state, asyncio.shield(gate))

    async def _refused_by_quota(self, new: NewRun, snapshot: Snapshot | None) -> bool:
        """Record a new fire over a workspace quota as a skipped run naming the quota."""
        if self._quotas is None or snapshot is None:
            return False
        refusal = await self._quotas.refusal(new.workspace_id)
        # A run that exists already was admitted when it was created (StartRun, webhooks).
        if refusal is None or await self._store.by_fire(new.fire_id) is not None:
            return False
        row, created = await self._store.create_refused(new, quota_error(refusal))
        if created:
            log.warning("fire refused: %s", refusal.message, extra={"run_id": row.id})
        return True

    async def _release(self, state: RunState, msg: Msg) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._store.release(state.run_id, state.token)
                await msg.nak()
        except Exception:
            log.warning("could not release the run on shutdown; its lease will expire")

    def _started_event(self, new: NewRun) -> Event:
        row = RunRow(
            id=new.id,
            fire_id=new.fire_id,
            workspace_id=new.workspace_id,
            automation_id=new.automation_id,
        )
        return self._engine.event(RunState(row=row, token="", snapshot=None), "started", "running")

    def _started_if_first(self, state: RunState, *, at: datetime | None = None) -> list[Event]:
        if state.row.attempt == 1:
            return [self._engine.event(state, "started", "running", at=at)]
        return []

    async def _not_claimed(self, msg: Msg, fire_id: str) -> None:
        row = await self._store.by_fire(fire_id)
        if row is None or row.status in TERMINAL:
            await msg.ack()
            return
        if row.lease_expires_at is not None and row.db_now is not None:
            left = (row.lease_expires_at - row.db_now).total_seconds()
            await msg.nak(delay=max(0.2, min(left + 0.1, self._lease)))
        else:
            await msg.nak(delay=0.2)

    async def run(
        self, js: Any, stop: asyncio.Event, max_in_flight: int, *, fetch_timeout: float = 0.5
    ) -> None:
        """Bind the shared durable consumer and consume until stop."""
        sub = await bus.pull_subscription(
            js,
            subject=FIRES_SUBJECT,
            durable=DURABLE,
            stream=bus.FIRES_STREAM.name,
            ack_wait_s=self._ack_wait,
            # Unlimited: only this handler decides when a message is done with (see handle).
            max_deliver=-1,
            max_ack_pending=max(1000, max_in_flight * 4) + self._max_early_fires,
        )
        try:
            await bus.consume(
                sub, self.handle, stop, max_in_flight=max_in_flight, fetch_timeout=fetch_timeout
            )
        finally:
            early = list(self._early)
            for task in early:
                task.cancel()
            await asyncio.gather(*early, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
