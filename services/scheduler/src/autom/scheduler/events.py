"""NATS handlers: definition events keep schedules current; run events annotate fires.

A handler that fails for a transient reason (database, NATS) naks its message with a delay
that doubles per delivery up to a cap, and the consumers deliver without limit: a change is
never dropped because an outage lasted long. Only a message that cannot be decoded is
terminated, after a copy goes to the dead-letter subject.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from autom.api.events.v1 import events_pb2
from autom.core.bus import EXECUTOR_FIRE_PREFIXES, MSG_ID, RUN_EVENT_SUBJECT, Backoff
from autom.core.logging import log_context
from autom.scheduler.convert import change_from_event
from autom.scheduler.service import SchedulerService

log = logging.getLogger(__name__)

DEFINITIONS_DURABLE = "scheduler"
RUNS_DURABLE = "scheduler-runs"
# A fire's run id and status change when its run starts and ends; step events are not needed,
# nor those of runs of the executor's own fires (exact subjects leave out their `.manual`).
RUN_EVENT_SUBJECTS = (RUN_EVENT_SUBJECT.format("started"), RUN_EVENT_SUBJECT.format("finished"))
DEAD_LETTER_SUBJECT = "automations.deadletters.scheduler"


def _deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:  # not a JetStream message: no metadata to count with
        return 1


class _Consumer:
    """What both handlers share: retry with backoff, dead-letter what cannot be read."""

    def __init__(self, js: JetStreamContext | None, backoff: Backoff) -> None:
        self._js = js
        self._backoff = backoff

    async def _retry_later(self, msg: Msg, what: str) -> None:
        deliveries = _deliveries(msg)
        delay = self._backoff.delay(deliveries)
        log.warning(
            "%s on %s failed (delivery %d); retrying in %.1fs",
            what,
            msg.subject,
            deliveries,
            delay,
            exc_info=True,
        )
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """Copy an unreadable message to the dead-letter subject, then terminate it."""
        meta = None
        with contextlib.suppress(Exception):  # not a JetStream message
            meta = msg.metadata
        where = f"{meta.stream}#{meta.sequence.stream}" if meta is not None else msg.subject
        log.error(
            "dead letter, terminated: %s on %s (%s, %d bytes)",
            reason,
            msg.subject,
            where,
            len(msg.data),
        )
        if self._js is not None:
            try:
                headers = {
                    MSG_ID: f"scheduler:{where}",
                    "Autom-Origin-Subject": msg.subject,
                    "Autom-Origin": where,
                    "Autom-Reason": reason,
                }
                await self._js.publish(DEAD_LETTER_SUBJECT, msg.data, timeout=5.0, headers=headers)
            except nats.errors.NoRespondersError:
                log.error("no stream holds %s; the dead letter is only logged", DEAD_LETTER_SUBJECT)
            except Exception:
                # NATS is struggling: keep the message and try again later.
                await self._retry_later(msg, "dead-lettering")
                return
        await msg.term()

    async def _handle(self, msg: Msg, what: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run work, then ack; on failure nak with backoff and answer False."""
        try:
            await work()
        except Exception:
            await self._retry_later(msg, what)
            return False
        await msg.ack()
        return True


class DefinitionEvents(_Consumer):
    """Applies `automations.definitions.*` to the schedules table, then wakes the due loop."""

    def __init__(
        self,
        service: SchedulerService,
        wake: Callable[[], None],
        *,
        js: JetStreamContext | None = None,
        backoff: Backoff = Backoff(),
    ) -> None:
        super().__init__(js, backoff)
        self._service = service
        self._wake = wake

    async def handle(self, msg: Msg) -> None:
        """Apply one event; ack after commit, nak with backoff on failure, term poison."""
        try:
            event = events_pb2.DefinitionEvent.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letter(msg, f"undecodable DefinitionEvent ({exc})")
            return
        if not event.automation_id:
            await self._dead_letter(msg, "DefinitionEvent without automation_id")
            return
        change = change_from_event(event)
        if (
            event.type == events_pb2.DEFINITION_EVENT_TYPE_CREATED
            and not change.schedule_triggers()
        ):
            # Nothing to schedule, and a new automation has no older change that stored state
            # would have to outrank: no transaction. Its later changes (newer revisions) are
            # recorded as they come, and a redelivery of this one is skipped again.
            log.debug(
                "definition event CREATED of %s r%d: no schedule trigger",
                event.automation_id,
                event.revision,
            )
            await msg.ack()
            return
        applied = wake = False

        async def apply() -> None:
            nonlocal applied, wake
            applied = await self._service.apply_change(change)
            # Only an active schedule can bring the next fire forward; an automation without
            # one (most creates and edits) or a pause leaves the due loop asleep.
            wake = applied and change.active and bool(change.schedule_triggers())

        with log_context(automation_id=event.automation_id):
            if await self._handle(msg, "definition event", apply):
                log.info(
                    "definition event %s v%d r%d %s",
                    events_pb2.DefinitionEventType.Name(event.type),
                    event.version,
                    event.revision,
                    "applied" if applied else "ignored (stale)",
                )
        if wake:
            self._wake()


class RunEvents(_Consumer):
    """Records each fire's run id and status from `automations.runs.{started,finished}`."""

    def __init__(
        self,
        service: SchedulerService,
        *,
        js: JetStreamContext | None = None,
        backoff: Backoff = Backoff(),
    ) -> None:
        super().__init__(js, backoff)
        self._service = service

    async def handle(self, msg: Msg) -> None:
        """Update the fire the run came from; an event of a run of the executor's own fires
        (published before their subjects ended in `.manual`) is just acked."""
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letter(msg, f"undecodable RunEvent ({exc})")
            return

        async def record() -> None:
            await self._service.record_run(event.fire_id, event.run_id, event.status)

        if (
            event.fire_id
            and event.type != events_pb2.RUN_EVENT_TYPE_STEP_FINISHED
            and not event.fire_id.startswith(EXECUTOR_FIRE_PREFIXES)
        ):
            with log_context(fire_id=event.fire_id, run_id=event.run_id):
                await self._handle(msg, "run event", record)
        else:
            await msg.ack()
