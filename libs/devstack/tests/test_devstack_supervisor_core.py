"""Supervisor run in-process without PostgreSQL or NATS."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import psutil

from autom.devstack.output import PrefixPrinter
from autom.devstack.ports import free_port
from autom.devstack.supervisor import GrpcHealth, HttpHealth, ServiceSpec, Supervisor

FAKE_STACK = Path(__file__).with_name("fake_stack.py")


async def test_service_never_ready_times_out_and_is_stopped() -> None:
    out = io.StringIO()
    spec = ServiceSpec(
        name="sleepy",
        command=[sys.executable, "-c", "import time; print('zzz', flush=True); time.sleep(60)"],
        env={},
        health=GrpcHealth(f"127.0.0.1:{free_port()}"),
    )
    supervisor = Supervisor([spec], printer=PrefixPrinter(out, color=False), ready_timeout=1)
    # The suite's own embedded servers are children too; only new ones count.
    before = {p.pid for p in psutil.Process().children()}

    assert await supervisor.run() == 1

    assert "sleepy | zzz" in out.getvalue()
    left = [
        p
        for p in psutil.Process().children()
        if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert not left


async def test_missing_executable_fails_clearly() -> None:
    out = io.StringIO()
    spec = ServiceSpec(
        name="ghost",
        command=["/nonexistent/ghost"],
        env={},
        health=HttpHealth(f"http://127.0.0.1:{free_port()}/healthz"),
    )

    assert await Supervisor([spec], printer=PrefixPrinter(out, color=False)).run() == 1


async def test_each_service_drains_on_its_own_deadline() -> None:
    out = io.StringIO()
    # Each takes 1.5 s of its 2.5 s to drain; a shared deadline would leave the last 1 s.
    names = ("first", "second")
    specs = []
    for name in names:
        port = free_port()
        specs.append(
            ServiceSpec(
                name=name,
                command=[sys.executable, str(FAKE_STACK), "serve", name],
                env={
                    **os.environ,
                    "AUTOM_GRPC_HOST": "127.0.0.1",
                    "AUTOM_GRPC_PORT": str(port),
                    "FAKE_DRAIN_SECONDS": "1.5",
                },
                health=GrpcHealth(f"127.0.0.1:{port}"),
                stop_timeout=2.5,
            )
        )

    def stop_when_ready(token: str | None, note: str) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        return "ready"

    supervisor = Supervisor(
        specs,
        printer=PrefixPrinter(out, color=False),
        banner=stop_when_ready,
        stop_timeout=60,
        stop_order=["first", "second"],
    )

    assert await supervisor.run() == 0

    output = out.getvalue()
    assert "killing it" not in output
    assert output.index("fake first drained") < output.index("fake second stopping")
    assert "fake second drained" in output
