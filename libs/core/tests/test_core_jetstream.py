"""JetStream helpers against a real nats-server: consumers bound and reconciled, consume."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from autom.core import bus
from autom.devstack.eventually import assert_eventually


async def test_a_durables_changed_settings_are_applied_when_it_is_bound_again(
    nats_url: str,
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        kwargs: dict[str, Any] = {
            "subject": "automations.runs.>",
            "durable": "d1",
            "stream": "AUTOM_RUNS",
        }
        sub = await bus.pull_subscription(js, **kwargs, ack_wait_s=30, max_deliver=10)
        await sub.unsubscribe()
        # A restart with new settings (e.g. AUTOM_MAX_DELIVER changed) must not keep the old.
        sub = await bus.pull_subscription(
            js, **kwargs, ack_wait_s=5, max_deliver=3, max_ack_pending=77
        )
        await sub.unsubscribe()
        config = (await js.consumer_info("AUTOM_RUNS", "d1")).config
        assert (config.ack_wait, config.max_deliver, config.max_ack_pending) == (5, 3, 77)
    finally:
        await nc.close()


async def test_a_durable_bound_again_with_several_subjects_gets_only_those(
    nats_url: str,
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        kwargs: dict[str, Any] = {"durable": "d4", "stream": "AUTOM_RUNS"}
        sub = await bus.pull_subscription(js, subject="automations.runs.d4a", **kwargs)
        await sub.unsubscribe()
        # An existing single-subject durable (an upgrade) takes the new filters.
        wanted = ("automations.runs.d4a", "automations.runs.d4c")
        sub = await bus.pull_subscription(js, subject=wanted, **kwargs)
        for suffix in "abc":
            await js.publish(f"automations.runs.d4{suffix}", suffix.encode())
        msgs = await sub.fetch(10, timeout=2)
        assert sorted(m.subject for m in msgs) == list(wanted)
        for m in msgs:
            await m.ack()
        await sub.unsubscribe()
        config = (await js.consumer_info("AUTOM_RUNS", "d4")).config
        assert (config.filter_subject or None, config.filter_subjects) == (None, list(wanted))
    finally:
        await nc.close()


async def test_a_consumer_of_a_stream_not_declared_yet_fails_until_its_owner_declares_it(
    nats_url: str,
) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    try:
        js = nc.jetstream()
        kwargs: dict[str, Any] = {
            "subject": "automations.fires.>",
            "durable": "d2",
            "stream": "AUTOM_FIRES",
        }
        with pytest.raises(Exception):  # noqa: B017 - nats-py's NotFoundError
            await bus.pull_subscription(js, **kwargs)
        await bus.ensure_streams(js, (bus.FIRES_STREAM,))
        sub = await bus.pull_subscription(js, **kwargs)
        await sub.unsubscribe()
    finally:
        await nc.close()


async def test_consume_raises_when_the_connection_closes_under_it(nats_url: str) -> None:
    nc = await bus.connect(nats_url, name="core-test")
    js = nc.jetstream()
    await bus.ensure_streams(js, (bus.RUNS_STREAM,))
    sub = await bus.pull_subscription(
        js, subject="automations.runs.>", durable="d3", stream="AUTOM_RUNS"
    )

    async def handler(msg: object) -> None:
        raise AssertionError("no message expected")

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(sub, handler, stop, fetch_timeout=0.1))
    await nc.close()
    # Returning quietly would leave a service SERVING while consuming nothing.
    with pytest.raises(nats.errors.ConnectionClosedError):
        await asyncio.wait_for(task, timeout=10)


async def test_connect_takes_a_cluster_as_a_comma_separated_list_with_a_node_down(
    nats_url: str,
) -> None:
    from autom.devstack.ports import free_port

    # AUTOM_NATS_URL of a cluster whose first node is down: the live one must be reached.
    down = f"nats://127.0.0.1:{free_port()}"
    nc = await bus.connect(f"{down}, {nats_url}", name="core-test")
    try:
        assert nc.is_connected
        assert len(nc.servers) == 2
    finally:
        await nc.close()


def test_run_events_of_the_executors_own_fires_end_in_manual() -> None:
    assert bus.run_event_subject("finished", "3f2a-uuid:2026-12-01T10:00:00Z") == (
        "automations.runs.finished"
    )
    for prefix in bus.EXECUTOR_FIRE_PREFIXES:
        assert bus.run_event_subject("started", f"{prefix}x") == "automations.runs.started.manual"


async def _consumed(
    nats_url: str, durable: str
) -> tuple[NATS, JetStreamContext, JetStreamContext.PullSubscription]:
    nc = await bus.connect(nats_url, name="core-test")
    js = nc.jetstream()
    await bus.ensure_streams(js, (bus.RUNS_STREAM,))
    sub = await bus.pull_subscription(
        js, subject=f"automations.runs.{durable}", durable=durable, stream="AUTOM_RUNS"
    )
    return nc, js, sub


async def test_consume_handles_each_message_once_and_holds_no_more_than_its_slots(
    nats_url: str,
) -> None:
    nc, js, sub = await _consumed(nats_url, "d5")
    slots, n = 4, 120
    handled: list[bytes] = []
    running = most_running = most_held = 0
    all_handled = asyncio.Event()

    async def handler(msg: Msg) -> None:
        nonlocal running, most_running, most_held
        running += 1
        most_running = max(most_running, running)
        # Delivered and not acked yet: what this consumer keeps from the other replicas.
        info = await js.consumer_info("AUTOM_RUNS", "d5")
        most_held = max(most_held, info.num_ack_pending)
        running -= 1
        handled.append(msg.data)
        await msg.ack()
        if len(handled) == n:
            all_handled.set()

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(sub, handler, stop, max_in_flight=slots))
    try:
        for i in range(n):
            await js.publish("automations.runs.d5", str(i).encode())
        await asyncio.wait_for(all_handled.wait(), timeout=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await nc.close()
    assert sorted(handled, key=int) == [str(i).encode() for i in range(n)]
    assert most_running <= slots
    assert most_held <= slots


async def test_consume_asks_again_when_its_pull_requests_expire(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus, "PULL_EXPIRES_S", 0.2)
    nc, js, sub = await _consumed(nats_url, "d6")
    got, expired = asyncio.Event(), asyncio.Event()
    expiries = 0

    async def handler(msg: Msg) -> None:
        await msg.ack()
        got.set()

    async def seen(msg: Msg) -> None:
        nonlocal expiries
        if (msg.headers or {}).get("Status") == "408":
            expiries += 1
            if expiries >= 2:
                expired.set()

    # The server's "request expired" replies to the consumer's inbox, seen from outside.
    await nc.subscribe("_INBOX.>", cb=seen)
    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(sub, handler, stop, fetch_timeout=0.05))
    try:
        # Requests expired unanswered meanwhile; the message still finds one open.
        await asyncio.wait_for(expired.wait(), timeout=30)
        await js.publish("automations.runs.d6", b"late")
        await asyncio.wait_for(got.wait(), timeout=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await nc.close()


async def test_consume_raises_when_its_consumer_is_deleted(nats_url: str) -> None:
    nc, js, sub = await _consumed(nats_url, "d7")

    async def handler(msg: Msg) -> None:
        raise AssertionError("no message expected")

    stop = asyncio.Event()
    task = asyncio.create_task(bus.consume(sub, handler, stop, fetch_timeout=0.05))

    async def asking() -> None:
        assert (await js.consumer_info("AUTOM_RUNS", "d7")).num_waiting

    try:
        await assert_eventually(asking)  # consume's first pull request is open
        await js.delete_consumer("AUTOM_RUNS", "d7")
        # Consuming on would take nothing ever again: the supervisor must subscribe anew.
        with pytest.raises(nats.js.errors.NotFoundError):
            await asyncio.wait_for(task, timeout=30)
    finally:
        stop.set()
        await nc.close()
