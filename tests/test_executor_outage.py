"""PostgreSQL down with a backlog of fires: nothing is given up, every fire gets one run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import nats
import sqlalchemy as sa

from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.db import create_engine
from autom.devstack.eventually import assert_eventually
from autom.devstack.ports import free_port
from autom.devstack.postgres import EmbeddedPostgres
from autom.devstack.testing import postgres_scratch_dir, service_keys
from autom.executor import db as executor_db
from autom.executor.app import build_app
from autom.executor.settings import ExecutorSettings
from autom.executor.sources import Snapshot, StaticDefinitions

WS = "ws1"


async def test_fires_survive_a_database_outage_past_the_old_delivery_limit(
    tmp_path: Path, nats_url: str, signing_key: str
) -> None:
    with postgres_scratch_dir(tmp_path) as data_dir:
        server = EmbeddedPostgres(data_dir, free_port(), fsync=False)
        server.start()
        try:
            await _outage(server, nats_url, signing_key)
        finally:
            server.stop()


async def _outage(server: EmbeddedPostgres, nats_url: str, signing_key: str) -> None:
    server.create_database("autom")
    url = server.url_for("autom")
    await executor_db.migrate(url)
    defs = StaticDefinitions()
    plan = [
        {"id": "a", "action": "transform", "params": {"output": "{{ inputs.n }}"}},
        {"id": "w", "action": "wait", "params": {"duration": "10ms"}},
    ]
    snapshot = Snapshot(str(uuid.uuid4()), WS, 1, {"name": "x", "plan": plan}, "user:c")
    defs.add(snapshot)
    settings = ExecutorSettings(
        database_url=url,
        nats_url=nats_url,
        **service_keys("executor", signing_key),
        grpc_port=0,
        retry_backoff_initial_seconds=0.02,
        retry_backoff_max_seconds=0.1,
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # The test publishes fires itself, standing in for the stream's owner (the scheduler).
    await bus.ensure_streams(js, (bus.FIRES_STREAM, bus.AUTH_STREAM))
    app = await build_app(settings, definitions=defs)
    await app.start()
    fire_ids = [f"sched:{uuid.uuid4().hex}" for _ in range(5)]
    try:
        server.stop()
        for n, fire_id in enumerate(fire_ids):
            fire = events_pb2.FireEvent(
                fire_id=fire_id,
                workspace_id=WS,
                automation_id=snapshot.automation_id,
                automation_version=1,
                trigger_type="schedule",
            )
            fire.inputs.update({"n": n})
            await bus.publish(
                js, f"automations.fires.{WS}", fire.SerializeToString(), msg_id=fire_id
            )

        # Every fire is delivered more often than the old limit (10) while the database is down.
        async def past_the_old_limit() -> None:
            info = await js.consumer_info(bus.FIRES_STREAM.name, "executor")
            assert info.delivered.consumer_seq >= len(fire_ids) * 12, info.delivered
            assert info.num_ack_pending + info.num_pending >= len(fire_ids), info

        await assert_eventually(past_the_old_limit, timeout=30)
        server.start()
        engine = create_engine(url=url, application_name="outage-test")
        try:

            async def all_done() -> list[Any]:
                async with engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            sa.text(
                                "SELECT r.fire_id, r.status, s.output FROM executor.runs r "
                                "JOIN executor.run_steps s ON s.run_id = r.id AND s.seq = 1 "
                                "WHERE r.fire_id = ANY(:ids)"
                            ),
                            {"ids": fire_ids},
                        )
                    ).all()
                assert len(rows) == len(fire_ids), rows
                assert all(r.status == "succeeded" for r in rows), rows
                return list(rows)

            rows = await assert_eventually(all_done, timeout=40)
        finally:
            await engine.dispose()
        outputs = {r.fire_id: r.output for r in rows}
        assert outputs == {f: n for n, f in enumerate(fire_ids)}
    finally:
        await app.stop()
        await nc.close()
