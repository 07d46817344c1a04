"""Event triggers: each matching event of a workspace becomes one run, chains bounded in depth.

Two durable consumers feed it: emitted events (`automations.custom.<workspace>.<subject>`)
and finished runs (`automations.runs.finished`, `.manual` appended for runs of the executor's
own fires; seen as subject `runs.<status>`). The fire id derives from the stream and
sequence of the message, so a redelivered event finds its run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from autom.api.events.v1 import events_pb2
from autom.core.bus import EVENT_FIRE_PREFIX, RUN_EVENT_SUBJECT, Backoff
from autom.core.logging import log_context
from autom.executor.quotas import RunQuotas, quota_error
from autom.executor.service import fire_event
from autom.executor.sources import EventTriggerMatch, EventTriggerSource
from autom.executor.store import NewRun, RunStore
from autom.templating import TemplateError, evaluate_condition

log = logging.getLogger(__name__)

CUSTOM_PREFIX = "automations.custom."
# Every finished run, the scheduler's and the executor's own (`bus.run_event_subject`).
_FINISHED = RUN_EVENT_SUBJECT.format("finished")
RUN_FINISHED_SUBJECTS = (_FINISHED, f"{_FINISHED}.>")
CUSTOM_DURABLE = "executor-event-triggers"
RUNS_DURABLE = "executor-run-triggers"


def event_fire_id(automation_id: str, trigger_id: str, stream: str, sequence: int) -> str:
    """One fire per (trigger, stream message): a redelivery finds the run already there."""
    key = f"{trigger_id}\n{stream}\n{sequence}"
    return f"{EVENT_FIRE_PREFIX}{automation_id}:{hashlib.sha256(key.encode()).hexdigest()}"


def event_inputs(data: Any) -> dict[str, Any]:
    """A JSON object is the inputs as it is; any other value is `inputs.data`."""
    if isinstance(data, dict):
        return dict(data)
    return {} if data is None else {"data": data}


class EventTriggers:
    """Turns events into runs of the automations whose event triggers match them."""

    def __init__(
        self,
        *,
        store: RunStore,
        source: EventTriggerSource,
        notify: Callable[[], None],
        max_depth: int,
        backoff: Backoff = Backoff(),
        quotas: RunQuotas | None = None,
    ) -> None:
        self._quotas = quotas
        self._store = store
        self._source = source
        self._notify = notify
        self._max_depth = max_depth
        self._backoff = backoff

    async def handle_custom(self, msg: Msg) -> None:
        """An event an automation (or anyone allowed on the subject) emitted."""
        rest = msg.subject.removeprefix(CUSTOM_PREFIX)
        workspace_id, _, subject = rest.partition(".")
        if not workspace_id or not subject:
            await msg.ack()
            return
        try:
            data: Any = json.loads(msg.data) if msg.data else None
        except ValueError:
            data = msg.data.decode("utf-8", "replace")
        upstream = (msg.headers or {}).get("Autom-Run-Id", "")
        await self._guarded(msg, workspace_id, subject, data, upstream, "", "")

    async def handle_run(self, msg: Msg) -> None:
        """A run finished: triggers with `source` (or subject `runs.<status>`) may answer."""
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except DecodeError:
            log.error("undecodable RunEvent on %s; ignored by event triggers", msg.subject)
            await msg.ack()
            return
        if event.type != events_pb2.RUN_EVENT_TYPE_FINISHED or not event.workspace_id:
            await msg.ack()
            return
        data = {
            "run_id": event.run_id,
            "automation_id": event.automation_id,
            "status": event.status,
        }
        await self._guarded(
            msg,
            event.workspace_id,
            f"runs.{event.status}",
            data,
            event.run_id,
            event.automation_id,
            event.status,
        )

    async def _guarded(self, msg: Msg, *args: Any) -> None:
        try:
            await self._dispatch(msg, *args)
        except Exception:
            deliveries = int(getattr(msg.metadata, "num_delivered", 1) or 1)
            delay = self._backoff.delay(deliveries)
            log.warning(
                "event trigger dispatch on %s failed (delivery %d); retrying in %.1fs",
                msg.subject,
                deliveries,
                delay,
                exc_info=True,
            )
            await msg.nak(delay=delay)
            return
        await msg.ack()

    async def _dispatch(
        self,
        msg: Msg,
        workspace_id: str,
        subject: str,
        data: Any,
        upstream_run_id: str,
        source_automation_id: str,
        source_status: str,
    ) -> None:
        found = await self._source.match_event_triggers(
            workspace_id, subject, source_automation_id, source_status
        )
        if not found:
            return
        meta = msg.metadata
        stream, sequence = meta.stream, int(meta.sequence.stream)
        upstream = (
            await self._store.get(upstream_run_id, with_steps=False) if upstream_run_id else None
        )
        if upstream is not None and upstream.workspace_id != workspace_id:
            # A header naming another workspace's run is not a cause this workspace may claim.
            upstream = None
        if upstream is not None and isinstance(data, dict) and source_status:
            error = upstream.error or {}
            data["error"] = str(error.get("message", "")) if isinstance(error, dict) else ""
        depth = (int(upstream.chain_depth) if upstream is not None else 0) + 1
        event = {"subject": subject, "data": data}
        for match in found:
            with log_context(automation_id=match.automation_id):
                condition = match.config.get("filter")
                if condition:
                    try:
                        if not evaluate_condition(
                            str(condition), {"event": event}, path="config.filter"
                        ):
                            continue
                    except TemplateError as exc:
                        log.warning("event trigger %s: filter failed: %s", match.trigger_id, exc)
                        continue
                await self._start(
                    match, workspace_id, subject, data, stream, sequence, upstream, depth
                )

    async def _start(
        self,
        match: EventTriggerMatch,
        workspace_id: str,
        subject: str,
        data: Any,
        stream: str,
        sequence: int,
        upstream: Any,
        depth: int,
    ) -> None:
        cause: dict[str, Any] = {
            "type": "event",
            "subject": subject,
            "stream": stream,
            "sequence": sequence,
        }
        if upstream is not None:
            cause["upstream_run_id"] = upstream.id
            cause["upstream_automation_id"] = upstream.automation_id
        run = NewRun(
            id=str(uuid.uuid4()),
            fire_id=event_fire_id(match.automation_id, match.trigger_id, stream, sequence),
            workspace_id=workspace_id,
            automation_id=match.automation_id,
            automation_version=match.version,
            trigger_type="event",
            trigger_id=match.trigger_id,
            fire_inputs=event_inputs(data),
            scheduled_for=None,
            fired_at=datetime.now(UTC),
            last_fired_at=None,
            principal=match.created_by,
            cause=cause,
            upstream_run_id=upstream.id if upstream is not None else "",
            chain_depth=depth,
        )
        if depth > self._max_depth:
            reason = (
                f"chain depth {depth} exceeds the limit of {self._max_depth} "
                f"(started by run {run.upstream_run_id or '-'} through {subject}); "
                "a cycle of event triggers stops here"
            )
            row, created = await self._store.create_refused(
                run,
                {"type": "ChainTooDeep", "message": reason, "retryable": False, "fields": []},
            )
            if created:
                log.warning("event run refused: %s", reason, extra={"run_id": row.id})
            return
        refusal = await self._quotas.refusal(workspace_id) if self._quotas is not None else None
        if refusal is not None and await self._store.by_fire(run.fire_id) is None:
            row, created = await self._store.create_refused(run, quota_error(refusal))
            if created:
                log.warning("event run refused: %s", refusal.message, extra={"run_id": row.id})
            return
        row, created = await self._store.create_pending(run, [fire_event(run)])
        if created:
            log.info(
                "event trigger %s fired by %s",
                match.trigger_id,
                subject,
                extra={"run_id": row.id, "fire_id": run.fire_id},
            )
            self._notify()
