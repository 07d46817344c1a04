"""Wiring of the executor: engine, NATS, outbox relay, fire consumer, servicer, server."""

from __future__ import annotations

import asyncio

from autom.api.executor.v1 import executor_service_pb2 as pb
from autom.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp, channel
from autom.core.registry import build_catalog
from autom.core.revocations import revocation_feed
from autom.executor.actions.catalog import build_actions
from autom.executor.concurrency import Concurrency
from autom.executor.engine import Engine
from autom.executor.grpc_api import ExecutorApi
from autom.executor.relay import PipelinedRelay
from autom.executor.service import ExecutorService
from autom.executor.settings import ExecutorSettings
from autom.executor.sources import GrpcDefinitions, StaticDefinitions
from autom.executor.store import RunStore, create_pool
from autom.executor.watch import RunWatchers
from autom.executor.worker import Worker

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExecutorService"].full_name


async def build_app(
    settings: ExecutorSettings, *, definitions: StaticDefinitions | None = None
) -> GrpcApp:
    """Connect to PostgreSQL, NATS and definitions and assemble the server (not started).

    `definitions` replaces the definitions service with snapshots held in memory (benchmarks).
    """
    engine = create_engine(
        url=settings.database_url,
        application_name="autom-executor",
        pool_size=settings.db_pool_size,
    )
    nc = await bus.connect(settings.nats_url, name="autom-executor")
    js = nc.jetstream()
    await bus.ensure_streams(js, replicas=settings.nats_stream_replicas)
    signer = TokenSigner(settings.auth_secret.get_secret_value())
    defs_channel = channel(settings.definitions_addr, signer.service_token("executor"))
    source: GrpcDefinitions | StaticDefinitions = definitions or GrpcDefinitions(
        defs_channel, cache_size=settings.definition_cache_size
    )
    actions, http = build_actions(build_catalog(), settings, js)
    pool = await create_pool(
        settings.database_url, size=settings.db_pool_size, application_name="autom-executor"
    )
    store = RunStore(engine, pool, max_output_bytes=settings.max_output_bytes)
    relay = PipelinedRelay(engine=engine, pool=pool, js=js)
    run_engine = Engine(
        store=store,
        actions=actions,
        secrets=source,
        lease_seconds=settings.lease_seconds,
        on_events=relay.notify,
        default_step_timeout=settings.default_step_timeout_seconds,
    )
    worker = Worker(
        store=store,
        engine=run_engine,
        definitions=source,
        concurrency=Concurrency(store, run_engine),
        lease_seconds=settings.lease_seconds,
        ack_wait_seconds=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        cancel_poll_seconds=settings.cancel_poll_seconds,
    )
    service = ExecutorService(
        store=store,
        definitions=source,
        engine=run_engine,
        worker=worker,
        relay=relay,
        watchers=RunWatchers(nc),
        watch_recheck_seconds=settings.watch_recheck_seconds,
    )
    api = ExecutorApi(service, actions)

    async def consume(stop: asyncio.Event) -> None:
        await worker.run(js, stop, settings.max_in_flight)

    async def sweep(stop: asyncio.Event) -> None:
        await service.sweep_orphans(
            stop, age=settings.orphan_after_seconds, every=settings.orphan_sweep_seconds
        )

    async def close() -> None:
        await http.aclose()
        await defs_channel.close()
        await nc.drain()
        await pool.close()
        await engine.dispose()

    return GrpcApp(
        name="executor",
        signer=signer,
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_ExecutorServiceServicer_to_server(api, server)],
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.shutdown_grace_seconds,
        background=[
            relay.run,
            consume,
            worker.heartbeat,
            sweep,
            revocation_feed(js, signer.revocations).run,
        ],
        cleanup=[close],
    )
