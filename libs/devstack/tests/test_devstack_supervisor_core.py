"""Supervisor run in-process without PostgreSQL or NATS."""

from __future__ import annotations

import io
import sys

import psutil

from autom.devstack.output import PrefixPrinter
from autom.devstack.ports import free_port
from autom.devstack.supervisor import GrpcHealth, HttpHealth, ServiceSpec, Supervisor


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
