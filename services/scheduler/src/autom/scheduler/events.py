"""NATS handlers: definition events keep schedules current; run events annotate fires."""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from autom.api.events.v1 import events_pb2
from autom.core.logging import log_context
from autom.scheduler.convert import change_from_event
from autom.scheduler.service import SchedulerService

log = logging.getLogger(__name__)

DEFINITIONS_DURABLE = "scheduler"
RUNS_DURABLE = "scheduler-runs"


class DefinitionEvents:
    """Applies `automations.definitions.*` to the schedules table, then wakes the due loop."""

    def __init__(self, service: SchedulerService, wake: Callable[[], None]) -> None:
        self._service = service
        self._wake = wake

    async def handle(self, msg: Msg) -> None:
        """Apply one event; ack after commit, term poison, raise (nak) on failures."""
        try:
            event = events_pb2.DefinitionEvent.FromString(msg.data)
        except DecodeError:
            log.error("undecodable definition event on %s; dropping it", msg.subject)
            await msg.term()
            return
        if not event.automation_id:
            await msg.term()
            return
        with log_context(automation_id=event.automation_id):
            applied = await self._service.apply_change(change_from_event(event))
            log.info(
                "definition event %s v%d %s",
                events_pb2.DefinitionEventType.Name(event.type),
                event.version,
                "applied" if applied else "ignored (stale)",
            )
        await msg.ack()
        if applied:
            self._wake()


class RunEvents:
    """Records each fire's run id and status from `automations.runs.*`."""

    def __init__(self, service: SchedulerService) -> None:
        self._service = service

    async def handle(self, msg: Msg) -> None:
        """Update the fire the run came from; events of runs not from a fire are acked."""
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except DecodeError:
            await msg.term()
            return
        if event.fire_id and event.type != events_pb2.RUN_EVENT_TYPE_STEP_FINISHED:
            with log_context(fire_id=event.fire_id, run_id=event.run_id):
                await self._service.record_run(event.fire_id, event.run_id, event.status)
        await msg.ack()
