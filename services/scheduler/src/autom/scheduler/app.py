"""Wiring of the scheduler: runtime, relay, consumers, the due loop, servicer, server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from autom.api.scheduler.v1 import scheduler_service_pb2 as pb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as pb_grpc
from autom.core import bus, metrics, tracing
from autom.core.audit import audit_relay
from autom.core.bus import wait_any
from autom.core.grpcserver import GrpcApp, Loop, channel
from autom.core.runtime import open_runtime, service_tokens
from autom.scheduler import db
from autom.scheduler.events import (
    DEFINITIONS_DURABLE,
    RUN_EVENT_SUBJECTS,
    RUNS_DURABLE,
    DefinitionEvents,
    RunEvents,
)
from autom.scheduler.grpc_api import SchedulerApi
from autom.scheduler.service import SchedulerService
from autom.scheduler.settings import SchedulerSettings
from autom.scheduler.sync import Resync

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulerService"].full_name
_PRUNE_EVERY_S = 600.0


class DueLoop:
    """Fires due schedules; sleeps until the earliest due time or a wake-up."""

    def __init__(self, service: SchedulerService, settings: SchedulerSettings) -> None:
        self._service = service
        self._settings = settings
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look again now (a definitions change may have moved a due time)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until stop; errors are logged and retried after a pause."""
        batch = self._settings.scheduler_batch_size
        cap = self._settings.scheduler_max_sleep_s
        while not stop.is_set():
            self._wake.clear()
            try:
                if await self._service.fire_due() >= batch:
                    continue
                delay = await self._service.seconds_until_due(cap)
            except Exception:
                log.exception("due loop pass failed; retrying")
                delay = 1.0
            await wait_any(stop, self._wake, delay)
        try:
            await self._service.unstage()
        except Exception:
            log.exception("could not give back fires planned ahead; they fire late")


async def build_app(settings: SchedulerSettings) -> GrpcApp:
    """Connect to PostgreSQL and NATS and assemble the server (not started)."""
    fires_stream = bus.FIRES_STREAM
    if settings.scheduler_fires_dedupe_window_s is not None:
        fires_stream = dataclasses.replace(
            fires_stream, duplicate_window_s=settings.scheduler_fires_dedupe_window_s
        )
    # Its token for definitions comes from definitions itself (short-lived, refreshed).
    tokens = service_tokens(settings, "scheduler")
    # The scheduler owns the fires stream only; definition and run events are others'.
    rt = await open_runtime(settings, name="scheduler", streams=(fires_stream,))

    async def stamp_fires(conn: AsyncConnection, fire_ids: list[str], acked: datetime) -> None:
        stamped = await conn.execute(
            update(db.fires)
            .where(db.fires.c.fire_id.in_(fire_ids))
            .values(published_at=acked)
            .returning(db.fires.c.kind, db.fires.c.scheduled_for)
        )
        rows = stamped.all()
        # Counted before the commit: a rolled-back batch is published again and counted twice.
        metrics.FIRES.labels("published").inc(len(rows))
        for kind, scheduled in rows:
            # Catch-up, backfill and manual fires are late by design: not a lag.
            if kind == "scheduled":
                metrics.FIRE_PUBLISH_LAG.observe(max(0.0, (acked - scheduled).total_seconds()))

    # Published rows are deleted (a tiny hot index); created_at is a fire's release time.
    relay = bus.OutboxRelay(
        engine=rt.engine,
        table=db.outbox,
        js=rt.js,
        batch_size=1000,
        poll_interval=0.25,
        keep_published=None,
        release_at_created=True,
        on_published=stamp_fires,
        # A fire's publish span joins the trace its due-loop span started.
        trace_parent=tracing.fire_parent,
    )
    audit_outbox = audit_relay(rt.engine, db.audit_outbox, rt.js)
    service = SchedulerService(
        rt.engine, settings, on_fires=relay.notify, on_audit=audit_outbox.notify
    )
    try:
        await service.unstage(stale=True)
    except Exception:
        # E.g. another replica's relay is publishing them right now: then they are on time.
        log.warning("could not give back stale planned fires", exc_info=True)
    loop = DueLoop(service, settings)
    definitions = channel(settings.definitions_addr, tokens, settings.grpc_tls)
    resync = Resync(service, definitions)
    api = SchedulerApi(service, resync)
    js = rt.js
    backoff = bus.Backoff(
        settings.scheduler_event_retry_base_s, settings.scheduler_event_retry_cap_s
    )
    definition_events = DefinitionEvents(service, loop.wake, js=js, backoff=backoff)
    run_events = RunEvents(service, js=js, backoff=backoff)

    async def consume_definitions(stop: asyncio.Event) -> None:
        sub = await bus.pull_subscription(
            js,
            subject=bus.DEFINITIONS_STREAM.subjects[0],
            durable=DEFINITIONS_DURABLE,
            stream=bus.DEFINITIONS_STREAM.name,
            max_deliver=-1,  # transient failures retry forever (with backoff)
        )
        try:
            await bus.consume(
                sub,
                definition_events.handle,
                stop,
                max_in_flight=20,
                fetch_timeout=settings.nats_fetch_timeout_seconds,
            )
        finally:
            # A pull subscription left open makes nc.drain() wait for its timeout.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def consume_runs(stop: asyncio.Event) -> None:
        sub = await bus.pull_subscription(
            js,
            subject=RUN_EVENT_SUBJECTS,
            durable=RUNS_DURABLE,
            stream=bus.RUNS_STREAM.name,
            max_deliver=-1,
        )
        try:
            await bus.consume(
                sub, run_events.handle, stop, fetch_timeout=settings.nats_fetch_timeout_seconds
            )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def resync_at_start(stop: asyncio.Event) -> None:
        await resync.run_until_done(stop, settings.scheduler_resync_retry_s)
        loop.wake()

    async def prune(stop: asyncio.Event) -> None:
        retention = timedelta(days=settings.scheduler_fire_retention_days)
        while not stop.is_set():
            try:
                while await service.prune(retention) >= 10_000:
                    pass
            except Exception:
                log.exception("pruning old fires failed")
            await wait_any(stop, None, _PRUNE_EVERY_S)

    background = [
        Loop("due", loop.run),
        Loop("outbox", relay.run),
        Loop("audit-outbox", audit_outbox.run),
        Loop("definition-events", consume_definitions),
        Loop("run-events", consume_runs),
        Loop("prune", prune),
    ]
    if settings.scheduler_resync_on_start:
        background.append(Loop("resync", resync_at_start, once=True))

    async def close() -> None:
        await definitions.close()
        await tokens.close()

    return rt.app(
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_SchedulerServiceServicer_to_server(api, server)],
        background=background,
        cleanup=[close],
    )
