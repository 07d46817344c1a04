"""kill -9 of an executor under load, repeatedly: one run per fire, all terminal, same keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from aiohttp import web
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.db import create_engine
from autom.core.grpcserver import channel
from autom.core.protoconv import to_timestamp
from autom.devstack.eventually import assert_eventually
from autom.devstack.testing import service_env


@pytest.fixture
async def sink() -> AsyncIterator[tuple[int, list[str]]]:
    keys: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[1], keys  # type: ignore[union-attr]
    await runner.cleanup()


def _spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "autom.executor", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_kill_9_under_load_leaves_exactly_one_terminal_run_per_fire(
    start_app: Any,
    owner_token: str,
    database_url: str,
    nats_url: str,
    signing_key: str,
    sink: tuple[int, list[str]],
) -> None:
    port, keys = sink
    # The hook is on loopback: definitions validates with the executor's allow-list.
    definitions = await start_app("definitions", http_allow_cidrs="127.0.0.0/8")
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    raw = {
        "name": "crashy",
        "plan": [
            {"id": "a", "action": "wait", "params": {"duration": "150ms"}},
            {
                "id": "hook",
                "action": "http_request",
                "params": {
                    "method": "POST",
                    "url": f"http://127.0.0.1:{port}/hook",
                    "json": {"run": "{{ run.id }}"},
                },
            },
            {"id": "b", "action": "wait", "params": {"duration": "150ms"}},
        ],
    }
    created = (
        await defs.CreateAutomation(
            dpb.CreateAutomationRequest(
                definition=json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
            )
        )
    ).automation
    env = {
        **os.environ,
        "AUTOM_DATABASE_URL": database_url,
        "AUTOM_NATS_URL": nats_url,
        **service_env("executor", signing_key),
        "AUTOM_GRPC_PORT": "0",
        "AUTOM_DEFINITIONS_ADDR": definitions.address,
        "AUTOM_LEASE_SECONDS": "1.5",
        "AUTOM_ACK_WAIT_SECONDS": "1.5",
        "AUTOM_HTTP_ALLOW_CIDRS": "127.0.0.0/8",
        "AUTOM_LOG_LEVEL": "WARNING",
    }
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await bus.ensure_streams(js)
    fire_ids = [f"crash:{uuid.uuid4().hex}" for _ in range(40)]
    engine = create_engine(url=database_url, application_name="crash-test")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_spawn(env))
        for fire_id in fire_ids:
            event = events_pb2.FireEvent(
                fire_id=fire_id,
                workspace_id=created.workspace_id,
                automation_id=created.id,
                automation_version=created.version,
                trigger_type="schedule",
                fired_time=to_timestamp(datetime.now(UTC)),
                principal="user:owner",
            )
            await bus.publish(
                js,
                f"automations.fires.{created.workspace_id}",
                event.SerializeToString(),
                msg_id=fire_id,
            )

        async def some_running() -> None:
            async with engine.connect() as conn:
                n = (
                    await conn.execute(
                        sa.text("SELECT count(*) FROM executor.runs WHERE status = 'running'")
                    )
                ).scalar()
            assert n

        for _ in range(3):
            await assert_eventually(some_running, timeout=20)
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait()
            procs.append(_spawn(env))

        async def all_done() -> list[Any]:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.text("SELECT id, fire_id, status, attempt FROM executor.runs")
                    )
                ).all()
            assert len(rows) == len(fire_ids), len(rows)
            stuck = [r for r in rows if r.status != "succeeded"]
            assert not stuck, stuck[:3]
            return list(rows)

        rows = await assert_eventually(all_done, timeout=60, interval=0.25)
        assert sorted(r.fire_id for r in rows) == sorted(fire_ids)
        assert any(r.attempt > 1 for r in rows), "no run was ever taken over"
        # Replays reuse the run's key: every key names a real run and the hook step.
        run_ids = {r.id for r in rows}
        assert {k.rsplit(":", 1)[0] for k in keys} == run_ids
        assert all(k.endswith(":hook") for k in keys)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        await nc.close()
        await engine.dispose()
