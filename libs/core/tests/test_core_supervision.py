"""GrpcApp supervises its background loops: restart with backoff, health follows, give up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from autom.core import bus
from autom.core.auth import TokenSigner, generate_private_key, private_key_text
from autom.core.grpcserver import EXIT_LOOP_DOWN, LIVENESS, GrpcApp, Loop, Supervision
from autom.devstack.eventually import assert_eventually

SECRET = private_key_text(generate_private_key())
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def make_app(*loops: Loop, give_up_after_s: float = 60.0) -> GrpcApp:
    return GrpcApp(
        name="sup-test",
        verifier=TokenSigner(SECRET),
        service_names=[],
        register=[],
        background=loops,
        supervision=Supervision(
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            healthy_after_s=0.3,
            give_up_after_s=give_up_after_s,
        ),
    )


@pytest.fixture
async def health_of() -> AsyncIterator[list[GrpcApp]]:
    apps: list[GrpcApp] = []
    yield apps
    for app in apps:
        await app.stop()


async def status(app: GrpcApp, service: str = "") -> int:
    async with grpc.aio.insecure_channel(app.address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(reply.status)


async def test_a_crashed_loop_is_restarted_and_health_follows_it(
    health_of: list[GrpcApp],
) -> None:
    broken = asyncio.Event()
    starts = 0

    async def flaky(stop: asyncio.Event) -> None:
        nonlocal starts
        starts += 1
        if broken.is_set():
            raise ConnectionError("consumer gone")
        await bus.wait_any(stop, broken, float(3600))
        if not stop.is_set():
            raise ConnectionError("consumer gone")

    async def quits(stop: asyncio.Event) -> None:
        # A loop returning before stop (e.g. on a closed connection) is a failure too.
        if broken.is_set():
            return
        await stop.wait()

    app = make_app(Loop("flaky", flaky), Loop("quits", quits))
    health_of.append(app)
    await app.start()
    assert await status(app) == SERVING

    broken.set()

    async def down() -> None:
        assert await status(app) == NOT_SERVING
        assert starts >= 3  # restarted, still failing

    await assert_eventually(down, timeout=10)
    # Not ready, yet alive: the process restarts itself only when the loop cannot recover.
    assert await status(app, LIVENESS) == SERVING
    broken.clear()

    async def up() -> None:
        assert await status(app) == SERVING

    await assert_eventually(up, timeout=10)
    assert not app.failed.is_set()


async def test_a_loop_that_cannot_recover_stops_the_app_with_an_exit_code(
    health_of: list[GrpcApp],
) -> None:
    async def always_fails(stop: asyncio.Event) -> None:
        raise ConnectionError("no stream")

    async def fine(stop: asyncio.Event) -> None:
        await stop.wait()

    app = make_app(Loop("fine", fine), Loop("doomed", always_fails), give_up_after_s=0.5)
    health_of.append(app)
    await app.start()
    await asyncio.wait_for(app.failed.wait(), timeout=10)
    assert app.exit_code == EXIT_LOOP_DOWN
    assert await status(app) == NOT_SERVING


async def test_a_once_loop_that_finishes_is_not_restarted(health_of: list[GrpcApp]) -> None:
    runs = 0
    done = asyncio.Event()

    async def once(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        done.set()

    app = make_app(Loop("resync", once, once=True))
    health_of.append(app)
    await app.start()
    await asyncio.wait_for(done.wait(), timeout=5)

    async def supervisor_finished() -> None:
        assert all(task.done() for task in app._tasks)

    await assert_eventually(supervisor_finished, timeout=5)
    assert await status(app) == SERVING
    assert runs == 1


def test_the_process_exits_non_zero_when_a_loop_gives_up() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from autom.core.auth import TokenSigner
        from autom.core.grpcserver import GrpcApp, Loop, Supervision, serve

        async def doomed(stop):
            raise ConnectionError("no stream")

        app = GrpcApp(
            name="doomed", verifier=TokenSigner({SECRET!r}), service_names=[], register=[],
            background=[Loop("doomed", doomed)],
            supervision=Supervision(backoff_initial_s=0.05, give_up_after_s=0.5),
        )
        asyncio.run(serve(app))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == EXIT_LOOP_DOWN, proc.stderr[-2000:]
    assert "did not recover" in proc.stderr


async def test_a_peer_still_starting_is_waited_for_quietly(
    health_of: list[GrpcApp], nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream its owner has not declared yet is one INFO line per try, not a traceback."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    consumed = asyncio.Event()

    async def consumer(stop: asyncio.Event) -> None:
        await js.stream_info(bus.FIRES_STREAM.name)
        consumed.set()
        await stop.wait()

    caplog.set_level("INFO", logger="autom.core.grpcserver")
    app = make_app(Loop("fires", consumer))
    health_of.append(app)
    try:
        await app.start()

        async def waited() -> None:
            assert any("waits for a peer still starting" in r.message for r in caplog.records)

        await assert_eventually(waited, timeout=10)
        await bus.ensure_streams(js, (bus.FIRES_STREAM,))
        await asyncio.wait_for(consumed.wait(), timeout=10)
    finally:
        await nc.close()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
