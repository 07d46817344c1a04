"""Each JetStream stream is declared by its owner only; consumers wait for it."""

from __future__ import annotations

from typing import Any

import nats
import nats.js.errors
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.api import AckPolicy, ConsumerConfig

from autom.core.bus import AUTH_STREAM, FIRES_STREAM, ensure_streams
from autom.core.grpcserver import channel
from autom.devstack.eventually import assert_eventually


async def test_the_schedulers_fires_dedupe_window_survives_other_services_starting(
    start_app: Any, nats_url: str
) -> None:
    await start_app("scheduler", scheduler_fires_dedupe_window_s=7, scheduler_resync_on_start=False)
    await start_app("definitions")
    await start_app("executor")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        assert (await js.stream_info("AUTOM_FIRES")).config.duplicate_window == 7
        names = {info.config.name for info in await js.streams_info()}
        assert {"AUTOM_DEFINITIONS", "AUTOM_AUTH", "AUTOM_RUNS", "AUTOM_CUSTOM"} <= names
    finally:
        await nc.close()


async def test_a_service_started_before_the_owner_of_a_stream_it_consumes_serves_once_it_exists(
    start_app: Any, nats_url: str
) -> None:
    scheduler = await start_app(
        "scheduler",
        scheduler_resync_on_start=False,
        loop_backoff_max_seconds=0.2,
        loop_healthy_after_seconds=0.2,
    )

    async def health() -> int:
        async with channel(scheduler.address) as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
        return int(reply.status)

    async def not_serving() -> None:
        # Its definition-event and run-event consumers have no stream to bind yet.
        assert await health() == health_pb2.HealthCheckResponse.NOT_SERVING

    await assert_eventually(not_serving, timeout=10)
    await start_app("definitions")
    await start_app("executor")

    async def serving() -> None:
        assert await health() == health_pb2.HealthCheckResponse.SERVING

    await assert_eventually(serving, timeout=15)


async def test_an_executor_restarted_with_new_consumer_settings_applies_them(
    start_app: Any, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, (FIRES_STREAM, AUTH_STREAM))  # standing in for their owners

        async def consumer_config(expected: tuple[float, int]) -> None:
            try:
                config = (await js.consumer_info(FIRES_STREAM.name, "executor")).config
            except nats.js.errors.NotFoundError as exc:
                raise AssertionError("no consumer yet") from exc
            assert (config.ack_wait, config.max_deliver) == expected

        # Created with the old delivery limit, as a deployment before it was lifted had it.
        await js.add_consumer(
            FIRES_STREAM.name,
            ConsumerConfig(
                durable_name="executor",
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=15,
                max_deliver=10,
                filter_subject="automations.fires.>",
            ),
        )
        await assert_eventually(lambda: consumer_config((15, 10)), timeout=15)
        first = await start_app("executor", ack_wait_seconds=15)
        await assert_eventually(lambda: consumer_config((15, -1)), timeout=15)
        await first.stop()
        first.bound_port = 0
        await start_app("executor", ack_wait_seconds=4)
        await assert_eventually(lambda: consumer_config((4, -1)), timeout=15)
    finally:
        await nc.close()
