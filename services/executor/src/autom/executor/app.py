"""Wiring of the executor: runtime, outbox relay, fire consumer, servicer, server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from autom.api.executor.v1 import executor_service_pb2 as pb
from autom.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.audit import audit_relay
from autom.core.grpcserver import GrpcApp, Loop, channel
from autom.core.registry import build_catalog
from autom.core.runtime import open_runtime, service_tokens
from autom.executor import db
from autom.executor.actions.catalog import build_actions
from autom.executor.children import ChildRuns
from autom.executor.concurrency import Concurrency
from autom.executor.deadletters import DeadLetters
from autom.executor.engine import Engine
from autom.executor.grpc_api import ExecutorApi
from autom.executor.quotas import RunQuotas
from autom.executor.service import ExecutorService
from autom.executor.settings import ExecutorSettings
from autom.executor.sources import GrpcDefinitions, StaticDefinitions
from autom.executor.store import RunStore, create_pool
from autom.executor.triggers import (
    CUSTOM_DURABLE,
    RUN_FINISHED_SUBJECTS,
    RUNS_DURABLE,
    EventTriggers,
)
from autom.executor.watch import RunWatchers
from autom.executor.worker import Worker

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExecutorService"].full_name
STREAMS = (bus.RUNS_STREAM, bus.CUSTOM_STREAM, bus.DEAD_LETTERS_STREAM)


async def build_app(
    settings: ExecutorSettings, *, definitions: StaticDefinitions | None = None
) -> GrpcApp:
    """Connect to PostgreSQL, NATS and definitions and assemble the server (not started).

    `definitions` replaces the definitions service with snapshots held in memory (benchmarks).
    """
    # Its token comes from definitions (short-lived, refreshed); none without definitions.
    tokens = service_tokens(settings, "executor") if definitions is None else None
    # The executor owns the run-event, custom-event and dead-letter streams; fires are the
    # scheduler's.
    rt = await open_runtime(settings, name="executor", streams=STREAMS)
    engine, js = rt.engine, rt.js
    defs_channel = channel(settings.definitions_addr, tokens, settings.grpc_tls)
    dead_letters = DeadLetters(js)
    source: GrpcDefinitions | StaticDefinitions = definitions or GrpcDefinitions(
        defs_channel,
        cache_size=settings.definition_cache_size,
        nc=rt.nc,
        latest_seconds=settings.start_run_cache_seconds,
    )
    actions, http = build_actions(build_catalog(), settings, js, mcp_servers=source)
    pool = await create_pool(
        settings.database_url, size=settings.db_pool_size, application_name="autom-executor"
    )
    store = RunStore(engine, pool, max_output_bytes=settings.max_output_bytes)
    # Run events are the executor's hottest NATS traffic (three per run and a fire): published
    # pipelined, polled often in case a commit's notify is missed, and deleted once JetStream
    # has them (kept, four rows a run would grow the table by millions a day under load).
    relay = bus.OutboxRelay(
        engine=engine, table=db.outbox, js=js, poll_interval=0.5, keep_published=None
    )
    watchers = RunWatchers(rt.nc)
    quotas = (
        RunQuotas(store, source, ttl_seconds=settings.quota_cache_seconds)
        if isinstance(source, GrpcDefinitions)
        else None
    )
    run_engine = Engine(
        store=store,
        actions=actions,
        secrets=source,
        lease_seconds=settings.lease_seconds,
        on_events=relay.notify,
        on_committed=watchers.wake,
        default_step_timeout=settings.default_step_timeout_seconds,
        child_runs=ChildRuns(
            store=store,
            definitions=source,
            watchers=watchers,
            notify=relay.notify,
            max_depth=settings.max_chain_depth,
            quotas=quotas,
        ),
    )
    worker = Worker(
        store=store,
        engine=run_engine,
        definitions=source,
        concurrency=Concurrency(
            store,
            run_engine,
            recheck_initial_seconds=settings.buffer_recheck_seconds,
            recheck_max_seconds=settings.buffer_recheck_max_seconds,
        ),
        lease_seconds=settings.lease_seconds,
        ack_wait_seconds=settings.ack_wait_seconds,
        cancel_poll_seconds=settings.cancel_poll_seconds,
        backoff_initial_seconds=settings.retry_backoff_initial_seconds,
        backoff_max_seconds=settings.retry_backoff_max_seconds,
        max_attempts=settings.max_run_attempts,
        dead_letters=dead_letters,
        quotas=quotas,
        max_early_fires=settings.max_early_fires,
    )
    audit_outbox = audit_relay(engine, db.audit_outbox, js)
    service = ExecutorService(
        store=store,
        definitions=source,
        engine=run_engine,
        worker=worker,
        relay=relay,
        audit_relay=audit_outbox,
        dead_letters=dead_letters,
        watchers=watchers,
        watch_recheck_seconds=settings.watch_recheck_seconds,
        webhooks=source if isinstance(source, GrpcDefinitions) else None,
        quotas=quotas,
    )
    api = ExecutorApi(service, actions)

    async def consume(stop: asyncio.Event) -> None:
        await worker.run(
            js, stop, settings.max_in_flight, fetch_timeout=settings.nats_fetch_timeout_seconds
        )

    async def sweep(stop: asyncio.Event) -> None:
        await service.sweep_orphans(
            stop,
            age=settings.orphan_after_seconds,
            every=settings.orphan_sweep_seconds,
            max_resumes=settings.max_orphan_resumes,
        )

    async def close() -> None:
        if isinstance(source, GrpcDefinitions):
            await source.close()
        await http.aclose()
        await defs_channel.close()
        if tokens is not None:
            await tokens.close()
        await pool.close()

    background = [
        Loop("outbox", relay.run),
        Loop("audit-outbox", audit_outbox.run),
        Loop("fires", consume),
        Loop("heartbeat", worker.heartbeat),
        Loop("orphan-sweep", sweep),
    ]
    if isinstance(source, GrpcDefinitions):
        background.append(Loop("snapshot-prefetch", source.prefetch))
        event_triggers = EventTriggers(
            store=store,
            source=source,
            notify=relay.notify,
            max_depth=settings.max_chain_depth,
            quotas=quotas,
            backoff=bus.Backoff(
                settings.retry_backoff_initial_seconds, settings.retry_backoff_max_seconds
            ),
        )

        async def consume_events(
            stop: asyncio.Event,
            *,
            spec: bus.StreamSpec,
            subject: str | tuple[str, ...],
            durable: str,
            handler: Any,
        ) -> None:
            sub = await bus.pull_subscription(
                js, subject=subject, durable=durable, stream=spec.name, max_deliver=-1
            )
            try:
                await bus.consume(sub, handler, stop, max_in_flight=20)
            finally:
                # A pull subscription left open makes nc.drain() wait for its timeout.
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

        background += [
            Loop(
                "event-triggers",
                functools.partial(
                    consume_events,
                    spec=bus.CUSTOM_STREAM,
                    subject=bus.CUSTOM_STREAM.subjects[0],
                    durable=CUSTOM_DURABLE,
                    handler=event_triggers.handle_custom,
                ),
            ),
            Loop(
                "run-triggers",
                functools.partial(
                    consume_events,
                    spec=bus.RUNS_STREAM,
                    subject=RUN_FINISHED_SUBJECTS,
                    durable=RUNS_DURABLE,
                    handler=event_triggers.handle_run,
                ),
            ),
        ]

    return rt.app(
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_ExecutorServiceServicer_to_server(api, server)],
        background=background,
        cleanup=[close],
    )
