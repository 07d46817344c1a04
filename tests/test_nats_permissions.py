"""NATS users: each service publishes only its own subjects; nobody connects without a user."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import RePublish

from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.auth import RevocationList
from autom.core.natsauth import inbox_prefix
from autom.core.revocations import revocation_feed
from autom.devstack.eventually import assert_eventually
from autom.devstack.nats import service_nats_url

pytestmark = pytest.mark.skipif(
    "AUTOM_TEST_NATS_URL" in os.environ,
    reason="an external NATS server runs with its own users",
)

Connect = Callable[[str], Awaitable[tuple[NATS, list[Exception]]]]
FIRE = "automations.fires.default"


@pytest.fixture
async def connect_as(nats_url: str) -> AsyncIterator[Connect]:
    """connect_as('executor') connects with that service's credentials; errors are recorded."""
    admin = await nats.connect(nats_url)
    await bus.ensure_streams(admin.jetstream(), (*bus.ALL_STREAMS, bus.DEAD_LETTERS_STREAM))
    opened: list[NATS] = [admin]

    async def connect(service: str) -> tuple[NATS, list[Exception]]:
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        nc = await nats.connect(
            service_nats_url(nats_url, service),
            inbox_prefix=inbox_prefix(service),
            error_cb=on_error,
            max_reconnect_attempts=0,
        )
        opened.append(nc)
        return nc, errors

    yield connect
    for nc in reversed(opened):
        await nc.close()


async def stream_messages(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def refused(nc: NATS, errors: list[Exception], subject: str) -> None:
    """Publishing to `subject` is answered with a permissions violation."""
    await nc.publish(subject, b"forged")
    await nc.flush()

    async def violation() -> None:
        assert any(
            "permissions violation" in str(e) and subject.lower() in str(e).lower() for e in errors
        ), errors

    await assert_eventually(violation, timeout=5)


async def test_a_fire_published_by_the_scheduler_is_accepted(
    connect_as: Connect, nats_url: str
) -> None:
    scheduler, errors = await connect_as("scheduler")
    assert await bus.publish(scheduler.jetstream(), FIRE, b"fire", msg_id="f1")
    assert errors == []
    assert await stream_messages(nats_url, "AUTOM_FIRES") == 1


async def test_the_executor_cannot_publish_a_fire_on_the_schedulers_subject(
    connect_as: Connect, nats_url: str
) -> None:
    executor, errors = await connect_as("executor")
    await refused(executor, errors, FIRE)
    with pytest.raises(nats.errors.TimeoutError):
        await bus.publish(executor.jetstream(), FIRE, b"forged", msg_id="x", timeout=0.5)
    # Its own manual fires go through.
    assert await bus.publish(executor.jetstream(), f"{FIRE}.manual", b"fire", msg_id="m1")
    assert await stream_messages(nats_url, "AUTOM_FIRES") == 1


@pytest.mark.parametrize("service", ["drafter", "gateway"])
async def test_the_drafter_and_gateway_cannot_publish_any_event(
    connect_as: Connect, nats_url: str, service: str
) -> None:
    nc, errors = await connect_as(service)
    for subject in (
        FIRE,
        f"{FIRE}.manual",
        "automations.runs.default",
        "automations.definitions.default",
        "automations.auth.token_revoked",
        "automations.custom.default.x",
        "automations.deadletters.fires",
    ):
        await refused(nc, errors, subject)
    for stream in ("AUTOM_FIRES", "AUTOM_RUNS", "AUTOM_DEFINITIONS", "AUTOM_AUTH"):
        assert await stream_messages(nats_url, stream) == 0


async def test_a_service_cannot_delete_or_reconfigure_another_services_stream(
    connect_as: Connect, nats_url: str
) -> None:
    executor, errors = await connect_as("executor")
    await refused(executor, errors, "$JS.API.STREAM.DELETE.AUTOM_FIRES")
    await refused(executor, errors, "$JS.API.STREAM.UPDATE.AUTOM_DEFINITIONS")
    await refused(executor, errors, "$JS.API.STREAM.PURGE.AUTOM_FIRES")
    # Nor read another service's replies (e.g. the scheduler's pub acks).
    await executor.subscribe(f"{inbox_prefix('scheduler')}.>")
    await executor.flush()

    async def sub_refused() -> None:
        assert any("subscription" in str(e) for e in errors), errors

    await assert_eventually(sub_refused, timeout=5)


async def connect_reply(nats_url: str, options: dict[str, object]) -> str:
    """The server's answer to a CONNECT with `options` (raw protocol: nothing left open)."""
    parts = urlsplit(nats_url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        await reader.readline()  # INFO
        writer.write(b"CONNECT " + json.dumps({"verbose": False, **options}).encode() + b"\r\n")
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_nobody_connects_without_a_services_credentials(nats_url: str) -> None:
    assert "Authorization Violation" in await connect_reply(nats_url, {})
    assert "Authorization Violation" in await connect_reply(
        nats_url, {"user": "executor", "pass": "guessed"}
    )
    executor = urlsplit(service_nats_url(nats_url, "executor"))
    assert (
        await connect_reply(nats_url, {"user": executor.username, "pass": executor.password})
        == "PONG"
    )


async def test_a_message_republished_by_another_stream_is_refused_by_consumers(
    connect_as: Connect, nats_url: str
) -> None:
    # Server-side republish bypasses subject permissions: the executor, owner of AUTOM_RUNS,
    # makes its run events reappear as scheduled fires and, the scheduler, its fires as
    # token revocations.
    executor, _ = await connect_as("executor")
    scheduler, _ = await connect_as("scheduler")
    admin = await nats.connect(nats_url)
    try:
        ajs = admin.jetstream()
        runs = (await ajs.stream_info("AUTOM_RUNS")).config
        runs.republish = RePublish(src="automations.runs.>", dest="automations.fires.>")
        await executor.jetstream().update_stream(runs)
        fires = (await ajs.stream_info("AUTOM_FIRES")).config
        fires.republish = RePublish(
            src="automations.fires.*", dest="automations.auth.{{wildcard(1)}}"
        )
        await scheduler.jetstream().update_stream(fires)
    finally:
        await admin.close()

    revocations = RevocationList()
    feed = revocation_feed(executor.jetstream(), revocations)
    stop = asyncio.Event()
    feed_task = asyncio.create_task(feed.run(stop))
    # The forged ones, then one genuine fire (itself republished as a forged revocation).
    await bus.publish(executor.jetstream(), "automations.runs.default", b"forged", msg_id="r1")
    forged = events_pb2.TokenRevokedEvent(token_id="victim").SerializeToString()
    await bus.publish(scheduler.jetstream(), FIRE, forged, msg_id="f1")

    async def landed() -> None:
        assert await stream_messages(nats_url, "AUTOM_FIRES") == 2
        assert await stream_messages(nats_url, "AUTOM_AUTH") == 2  # one per fire

    await assert_eventually(landed, timeout=5)

    handled: list[bytes] = []

    async def handler(msg: Msg) -> None:
        handled.append(msg.data)
        await msg.ack()

    sub = await bus.pull_subscription(
        executor.jetstream(), subject="automations.fires.>", durable="t", stream="AUTOM_FIRES"
    )
    consumer = asyncio.create_task(bus.consume(sub, handler, stop))

    async def only_the_genuine_fire() -> None:
        info = await executor.jetstream().consumer_info("AUTOM_FIRES", "t")
        assert info.num_ack_pending == 0 and info.num_pending == 0, info
        assert handled == [forged]

    await assert_eventually(only_the_genuine_fire, timeout=5)
    stop.set()
    await asyncio.gather(consumer, feed_task)
    assert not revocations.is_revoked("victim")
