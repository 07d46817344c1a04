"""Use cases of the executor API: start, read, list, cancel, retry and watch runs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from autom.api.events.v1 import events_pb2
from autom.core import paging
from autom.core.audit import SUBJECT as AUDIT_SUBJECT
from autom.core.audit import Change, audit_event
from autom.core.auth import ANY_WORKSPACE, Principal
from autom.core.bus import MANUAL_FIRE_PREFIX, RETRY_FIRE_PREFIX, WEBHOOK_FIRE_PREFIX, OutboxRelay
from autom.core.errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    Unavailable,
    ValidationFailed,
    Violation,
)
from autom.core.protoconv import dict_to_struct, to_timestamp
from autom.core.registry import WEBHOOK_DEFAULTS
from autom.executor.convert import latest_records
from autom.executor.deadletters import DeadLetter, DeadLetters
from autom.executor.domain.inputs import build_inputs, trigger_inputs
from autom.executor.engine import Engine, RunState
from autom.executor.errors import DispatchError, RunAbandoned
from autom.executor.quotas import RunQuotas
from autom.executor.sources import Snapshot, WebhookDelivery, WebhookSource
from autom.executor.store import TERMINAL, Event, NewRun, RunRow, RunStore
from autom.executor.watch import RunWatchers
from autom.executor.worker import Worker

log = logging.getLogger(__name__)

# Manual fires and retries have a subject of their own: the executor's NATS user may publish
# only these, the scheduler's `automations.fires.<workspace>` stay the scheduler's alone.
FIRE_SUBJECT = "automations.fires.{}.manual"


class CallerDefinitions(Protocol):
    """Reads a definition as the caller, so their workspace and rights apply."""

    async def get_as(self, token: str, automation_id: str, version: int) -> Snapshot:
        """The snapshot; NotFound when the caller cannot see it."""
        ...


@dataclass
class WatchEvent:
    """One item of a WatchRun stream."""

    kind: str
    row: RunRow
    step: dict[str, Any] | None = None


def _run_of(row: RunRow) -> NewRun:
    return NewRun(
        id=row.id,
        fire_id=row.fire_id,
        workspace_id=row.workspace_id,
        automation_id=row.automation_id,
        automation_version=row.automation_version,
        trigger_type=row.trigger_type,
        trigger_id=row.trigger_id,
        fire_inputs=dict(row.fire_inputs or {}),
        scheduled_for=row.scheduled_for,
        fired_at=row.fired_at,
        last_fired_at=row.last_fired_at,
        principal=row.principal,
        retry_of_run_id=row.retry_of_run_id,
        resume_from_step=row.resume_from_step,
    )


def _differs(existing: Any, requested: NewRun, version: int) -> bool:
    """Whether a StartRun replay asks for something other than the run its request_id made."""
    return (
        existing.automation_id != requested.automation_id
        or (version != 0 and existing.automation_version != version)
        or dict(existing.fire_inputs or {}) != requested.fire_inputs
    )


def _paused_note(snapshot: Snapshot) -> str:
    """What a manual run of a paused automation says about it ("" when active)."""
    if snapshot.status != "paused":
        return ""
    why = f" (pause note: {snapshot.pause_note})" if snapshot.pause_note else ""
    return f"started by hand while the automation was paused{why}"


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(exc: DispatchError) -> ValidationFailed:
    """StartRun's and webhooks' answer to inputs the schema refuses."""
    return ValidationFailed(
        [Violation(field, sentence) for field, sentence in exc.violations]
        or [Violation("inputs", exc.message)]
    )


def webhook_inputs(
    delivery: WebhookDelivery, headers: dict[str, str], query: dict[str, str], body: bytes
) -> dict[str, Any]:
    """The run's inputs from a delivery: the JSON object body, plus headers and query if asked."""
    inputs: dict[str, Any] = {}
    if body.strip():
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationFailed([Violation("body", f"not JSON: {exc}")]) from exc
        if not isinstance(parsed, dict):
            raise ValidationFailed([Violation("body", "must be a JSON object")])
        inputs = parsed
    wanted = [str(h).lower() for h in delivery.config.get("headers") or []]
    if wanted:
        inputs["headers"] = {h: headers[h] for h in wanted if h in headers}
    if delivery.config.get("query"):
        inputs["query"] = dict(query)
    return inputs


def webhook_fire_id(delivery: WebhookDelivery) -> str:
    """One fire per (trigger, delivery id): a repeated delivery finds the run already there.

    Keyed by automation and trigger rather than hook id, so a rotated URL keeps deduping.
    """
    key = f"{delivery.trigger_id}\n{delivery.delivery_id or uuid.uuid4().hex}"
    return (
        f"{WEBHOOK_FIRE_PREFIX}{delivery.automation_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    )


def fire_event(run: NewRun, msg_id: str | None = None) -> Event:
    fire = events_pb2.FireEvent(
        fire_id=run.fire_id,
        workspace_id=run.workspace_id,
        automation_id=run.automation_id,
        automation_version=run.automation_version,
        trigger_id=run.trigger_id,
        trigger_type=run.trigger_type,
        scheduled_for=to_timestamp(run.scheduled_for),
        fired_time=to_timestamp(run.fired_at),
        last_fired_time=to_timestamp(run.last_fired_at),
        inputs=dict_to_struct(run.fire_inputs),
        principal=run.principal,
        retry_of_run_id=run.retry_of_run_id,
        resume_from_step=run.resume_from_step,
    )
    return Event(
        FIRE_SUBJECT.format(run.workspace_id), msg_id or run.fire_id, fire.SerializeToString()
    )


class ExecutorService:
    """The API's use cases; runs themselves go through the fire path and the worker."""

    def __init__(
        self,
        *,
        store: RunStore,
        definitions: CallerDefinitions,
        engine: Engine,
        worker: Worker | None,
        relay: OutboxRelay | None,
        audit_relay: OutboxRelay | None = None,
        dead_letters: DeadLetters | None = None,
        watchers: RunWatchers | None = None,
        watch_recheck_seconds: float = 5.0,
        webhooks: WebhookSource | None = None,
        quotas: RunQuotas | None = None,
    ) -> None:
        self._webhooks = webhooks
        self._quotas = quotas
        self._store = store
        self._definitions = definitions
        self._engine = engine
        self._worker = worker
        self._relay = relay
        self._audit_relay = audit_relay
        self._dead_letters = dead_letters
        self._watchers = watchers or RunWatchers(None)
        self._recheck = watch_recheck_seconds

    def _published(self) -> None:
        for relay in (self._relay, self._audit_relay):
            if relay is not None:
                relay.notify()

    async def start_run(
        self,
        caller: Principal,
        *,
        automation_id: str,
        version: int,
        inputs: dict[str, Any],
        request_id: str,
    ) -> RunRow:
        """Create the pending run and publish its manual fire (idempotent on request_id)."""
        if not automation_id:
            raise ValidationFailed([Violation("automation_id", "required")])
        if version < 0:
            raise ValidationFailed([Violation("version", "must not be negative")])
        snapshot = await self._definitions.get_as(caller.token, automation_id, version)
        if not caller.sees(snapshot.workspace_id):
            raise NotFound("automation", automation_id)
        if snapshot.status == "archived":
            raise FailedPrecondition(
                f"automation {snapshot.automation_id} is archived; archived automations "
                "cannot be run"
            )
        ws = snapshot.workspace_id
        try:
            # Runtime keys are added at dispatch; only the caller's inputs are checked here.
            build_inputs(snapshot.definition, inputs, {})
        except DispatchError as exc:
            raise _invalid(exc) from exc
        key = request_id or uuid.uuid4().hex
        fire_id = f"{MANUAL_FIRE_PREFIX}{ws}:{key}"
        await self._admit(ws, fire_id)
        run = NewRun(
            id=str(uuid.uuid4()),
            fire_id=fire_id,
            workspace_id=ws,
            automation_id=snapshot.automation_id,
            automation_version=snapshot.version,
            trigger_type="manual",
            trigger_id="",
            fire_inputs=inputs,
            scheduled_for=None,
            fired_at=_now(),
            last_fired_at=None,
            principal=caller.subject,
            note=_paused_note(snapshot),
        )
        audit = self._audit(
            caller,
            "run.start",
            run,
            details={"automation_version": str(run.automation_version)},
        )
        row, created = await self._store.create_pending(run, [fire_event(run)], [audit])
        if created:
            self._published()
        elif _differs(row, run, version):
            raise ValidationFailed(
                [
                    Violation(
                        "request_id",
                        "was already used for a different request (it started run "
                        f"{row.id} of automation {row.automation_id} version "
                        f"{row.automation_version}, with its own inputs); send a new "
                        "request_id for a new run",
                    )
                ]
            )
        return row

    def _audit(
        self, caller: Principal, action: str, run: NewRun | Any, details: dict[str, str]
    ) -> Event:
        """The audit outbox row of a run mutation (written with it)."""
        event = audit_event(
            "executor",
            Change(
                action=action,
                target_type="run",
                target_id=run.id,
                workspace_id=run.workspace_id,
                details={"automation_id": run.automation_id, **details},
            ),
            caller,
        )
        return Event(AUDIT_SUBJECT.format("executor"), event.event_id, event.SerializeToString())

    async def _admit(self, workspace_id: str, fire_id: str) -> None:
        """Raise the quota a new run would pass (a repeated request finds its run instead)."""
        if self._quotas is None:
            return
        refusal = await self._quotas.refusal(workspace_id)
        if refusal is not None and await self._store.by_fire(fire_id) is None:
            raise refusal

    async def usage(self, caller: Principal, workspace_id: str) -> tuple[str, list[Any]]:
        """(name, current, limit) of every quota of the workspace."""
        ws = workspace_id or caller.workspace_id
        if ws == ANY_WORKSPACE:
            raise ValidationFailed([Violation("workspace_id", "required")])
        if not caller.sees(ws):
            raise NotFound("workspace", ws)
        if self._quotas is None:
            raise Unavailable("quotas are not served by this executor")
        return ws, await self._quotas.usage(ws)

    async def receive_webhook(
        self, *, hook_id: str, headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[Any, bool]:
        """The run of one webhook delivery, created unless its delivery id was seen before.

        Nothing is created for a delivery that is not genuine, over a limit or whose body the
        inputs schema refuses: each answers its error instead.
        """
        if self._webhooks is None:
            raise Unavailable("webhooks are not served by this executor")
        if not hook_id:
            raise NotFound("webhook", hook_id)
        headers = {k.lower(): v for k, v in headers.items()}
        delivery = await self._webhooks.authenticate_webhook(hook_id, headers, body)
        fire_id = webhook_fire_id(delivery)
        existing = await self._store.by_fire(fire_id)
        if existing is not None:
            return existing, False
        if not delivery.active:
            raise FailedPrecondition(
                "the automation is not active; resume it to accept deliveries",
                reason="automation_not_active",
            )
        if self._quotas is not None:
            await self._quotas.check_webhook(delivery.workspace_id)
        limit = int(
            delivery.config.get("rate_limit_per_minute")
            or WEBHOOK_DEFAULTS["rate_limit_per_minute"]
        )
        count = await self._store.hit(f"webhook:{delivery.automation_id}:{delivery.trigger_id}")
        if count > limit:
            raise ResourceExhausted(
                f"webhook rate limit: {count} requests this minute, limit {limit}",
                reason="webhook_rate_limited",
            )
        inputs = webhook_inputs(delivery, headers, query, body)
        snapshot = await self._webhooks.get(delivery.automation_id, delivery.version)
        try:
            supplied = {**trigger_inputs(snapshot.definition, delivery.trigger_id), **inputs}
            build_inputs(snapshot.definition, supplied, {})
        except DispatchError as exc:
            raise _invalid(exc) from exc
        await self._admit(delivery.workspace_id, fire_id)
        run = NewRun(
            id=str(uuid.uuid4()),
            fire_id=fire_id,
            workspace_id=delivery.workspace_id,
            automation_id=delivery.automation_id,
            automation_version=snapshot.version,
            trigger_type="webhook",
            trigger_id=delivery.trigger_id,
            fire_inputs=inputs,
            scheduled_for=None,
            fired_at=_now(),
            last_fired_at=None,
            principal=delivery.created_by,
        )
        row, created = await self._store.create_pending(run, [fire_event(run)])
        if created:
            log.info(
                "webhook delivery accepted",
                extra={"automation_id": run.automation_id, "run_id": row.id, "fire_id": fire_id},
            )
            self._published()
        return row, created

    async def get_run(self, caller: Principal, run_id: str) -> RunRow:
        """A run the caller may see, else NotFound."""
        if not run_id:
            raise ValidationFailed([Violation("run_id", "required")])
        row = await self._store.get(run_id)
        if row is None or not caller.sees(row.workspace_id):
            raise NotFound("run", run_id)
        return row

    async def list_runs(
        self,
        caller: Principal,
        *,
        automation_id: str,
        status: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[RunRow], str]:
        """A page of runs, newest first, and the token of the next page."""
        limit = paging.page_size(page_size)
        cursor = None
        if page_token:
            raw = paging.decode_page_token(page_token, keys=("t", "i"))
            cursor = (str(raw["t"]), str(raw["i"]))
            try:
                datetime.fromisoformat(cursor[0])
            except ValueError as exc:
                raise ValidationFailed([Violation("page_token", "malformed page token")]) from exc
        rows = await self._store.list(
            workspace_id=None if caller.workspace_id == ANY_WORKSPACE else caller.workspace_id,
            automation_id=automation_id,
            status=status,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit + 1,
        )
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            assert last.created_at is not None  # NOT NULL
            token = paging.encode_page_token({"t": last.created_at.isoformat(), "i": last.id})
        return rows, token

    async def cancel_run(self, caller: Principal, run_id: str, reason: str) -> RunRow:
        """Request cancellation; waits briefly for the run to reach its terminal state."""
        row = await self.get_run(caller, run_id)
        if row.status in TERMINAL:
            return row
        why = reason or f"cancelled by {caller.subject}"
        state = RunState(row=row, token="", snapshot=None)
        finished = self._engine.event(state, "finished", "cancelled")
        audit = self._audit(caller, "run.cancel", row, {"status_before": row.status})
        await self._store.request_cancel(run_id, why, [finished], [audit])
        self._published()
        if self._worker is not None:
            self._worker.cancel_local(run_id, why)
        for _ in range(40):
            fresh = await self._store.get(run_id)
            if fresh is None:
                break
            row = fresh
            if row.status in TERMINAL:
                break
            await asyncio.sleep(0.05)
        return row

    async def retry_run(self, caller: Principal, run_id: str, request_id: str) -> RunRow:
        """A new run of the same version and inputs, resuming at the step that failed."""
        old = await self.get_run(caller, run_id)
        if old.status not in ("failed", "timed_out", "cancelled"):
            raise FailedPrecondition(
                f"run {run_id} is {old.status}; only failed, timed out or "
                "cancelled runs can be retried"
            )
        records = latest_records(list(old.steps or []))
        kept = [
            r
            for r in records
            if r.get("phase", "plan") == "plan" and r.get("status") in ("succeeded", "skipped")
        ]
        resume = next(
            (
                r["step_id"]
                for r in records
                if r.get("phase", "plan") == "plan"
                and r.get("status") not in ("succeeded", "skipped")
            ),
            "",
        )
        key = request_id or uuid.uuid4().hex
        run = NewRun(
            id=str(uuid.uuid4()),
            fire_id=f"{RETRY_FIRE_PREFIX}{old.id}:{key}",
            workspace_id=old.workspace_id,
            automation_id=old.automation_id,
            automation_version=old.automation_version,
            trigger_type="retry",
            trigger_id=old.trigger_id,
            fire_inputs=dict(old.fire_inputs or {}),
            scheduled_for=old.scheduled_for,
            fired_at=_now(),
            last_fired_at=old.last_fired_at,
            principal=caller.subject,
            retry_of_run_id=old.id,
            resume_from_step=resume,
            inputs=None if old.inputs is None else dict(old.inputs),
            steps=kept,
        )
        audit = self._audit(caller, "run.retry", run, {"retry_of_run_id": old.id})
        row, created = await self._store.create_pending(run, [fire_event(run)], [audit])
        if created:
            self._published()
        return row

    async def sweep_orphans(
        self, stop: asyncio.Event, *, age: float, every: float, max_resumes: int
    ) -> None:
        """Re-publish the fires of runs left behind; a run in a crash loop fails past a bound."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                await self.sweep_once(age, max_resumes)
            except Exception:
                log.exception("orphan sweep failed; will retry")

    async def sweep_once(self, age: float, max_resumes: int) -> None:
        """One pass of the orphan sweep."""
        rows = await self._store.orphans(age)
        events = []
        for r in rows:
            if r.orphan_resumes > max_resumes:
                await self._abandon(r)
                continue
            msg_id = f"{r.fire_id}:resume:{r.attempt}:{r.orphan_resumes}"
            events.append(fire_event(_run_of(r), msg_id))
        await self._store.enqueue(events)
        if events:
            log.warning("re-published %d orphaned fires", len(events))
            self._published()

    async def _abandon(self, row: RunRow) -> None:
        reason = RunAbandoned(
            f"the run was taken up and left unfinished {row.orphan_resumes} times "
            f"(last worker: {row.lease_owner or 'none'}, "
            f"attempt {row.attempt}, status {row.status})"
        )
        state = RunState(row=row, token="", snapshot=None)
        finished = self._engine.event(state, "finished", "failed")
        if await self._store.abandon(row.id, reason.detail(), [finished]):
            log.error("orphaned run abandoned: %s", reason.message, extra={"run_id": row.id})
            self._published()

    async def list_dead_letters(
        self, caller: Principal, *, page_size: int, page_token: str
    ) -> tuple[list[DeadLetter], str]:
        """A page of dead letters, oldest first, and the token of the next page."""
        limit = paging.page_size(page_size)
        after = 0
        if page_token:
            raw = paging.decode_page_token(page_token, keys=("s",))
            if not isinstance(raw["s"], int) or raw["s"] < 0:
                raise ValidationFailed([Violation("page_token", "malformed page token")])
            after = raw["s"]
        if self._dead_letters is None:
            return [], ""
        found = await self._dead_letters.list(after, limit + 1)
        token = ""
        if len(found) > limit:
            found = found[:limit]
            token = paging.encode_page_token({"s": found[-1].sequence})
        return found, token

    async def watch(self, caller: Principal, run_id: str) -> AsyncIterator[WatchEvent]:
        """Snapshot, then step and status changes, until the run is terminal.

        Woken by the run's events; each wake reads the run row and only the step records
        written since the last one seen. The re-check bounds the delay of a missed event.
        """
        async with self._watchers.watch(run_id) as wake:
            row = await self.get_run(caller, run_id)
            yield WatchEvent("snapshot", row)
            records = list(row.steps or [])
            seen = max((int(r.get("seq") or 0) for r in records), default=0)
            status = row.status
            while status not in TERMINAL:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._recheck)
                # Cleared before reading: an event arriving during the reads wakes us again.
                wake.clear()
                fresh = await self._store.get(run_id, with_steps=False)
                if fresh is None:
                    return
                new = await self._store.steps(run_id, after=seen)
                records += new
                fresh = replace(fresh, steps=records)
                for record in new:
                    seen = int(record["seq"])
                    yield WatchEvent("step", fresh, record)
                if fresh.status != status:
                    status = fresh.status
                    yield WatchEvent("terminal" if status in TERMINAL else "status", fresh)
