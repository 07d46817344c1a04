"""Executor throughput: N one-step transform runs through the fire path, durably committed.

Prints one JSON object: runs/s draining a backlog, fire -> terminal latency p50/p99 at a paced
200 runs/s and in a burst, and runs/s of the claim/lease path (a one-step `wait 0s` plan): a
transform-only plan is side-effect free, so the executor computes it and commits it terminal in
one insert; any other plan claims a lease first and commits twice.

Starts embedded PostgreSQL (fsync on) and NATS unless AUTOM_BENCH_DATABASE_URL /
AUTOM_BENCH_NATS_URL name servers. Fires are published straight to JetStream as manual fires
(what StartRun publishes) so the figure is the executor's, not the definitions service's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from bench import durability, servers

WS = "bench"


@contextlib.asynccontextmanager
async def executor_stack(
    pg_url: str,
    nats_url: str,
    definition: dict[str, Any],
    *,
    backlog: int = 0,
    **settings: Any,
) -> AsyncIterator[dict[str, Any]]:
    """A fresh database and clean streams, one in-memory automation and a started executor.

    `backlog` fires are published before the executor starts (prefix `backlog:`), so the
    publisher does not compete with the executor for the CPU while they drain.
    """
    import asyncpg
    import nats

    from autom.devstack.testing import service_keys
    from autom.executor import db
    from autom.executor.app import build_app
    from autom.executor.settings import ExecutorSettings
    from autom.executor.sources import Snapshot, StaticDefinitions

    name = f"autom_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    if not os.environ.get("AUTOM_BENCH_NATS_URL"):
        # Only an embedded server is ours to wipe; a named one may be shared.
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith("AUTOM_"):
                await js.delete_stream(info.config.name)
    try:
        await db.migrate(url)
        snapshot = Snapshot(str(uuid.uuid4()), WS, 1, definition, "user:bench")
        from autom.core import bus

        await bus.ensure_streams(js)
        await publish_many(js, snapshot.automation_id, [f"backlog:{i}" for i in range(backlog)])
        started = time.time()
        fields: dict[str, Any] = {
            "database_url": url,
            "nats_url": nats_url,
            "grpc_port": 0,
            **service_keys("executor"),
            **settings,
        }
        app = await build_app(
            ExecutorSettings(**fields),
            definitions=StaticDefinitions([snapshot]),
        )
        await app.start()
        conn = await asyncpg.connect(url)
        try:
            yield {
                "js": js,
                "conn": conn,
                "automation_id": snapshot.automation_id,
                "started": started,
            }
        finally:
            await conn.close()
            await app.stop()
    finally:
        await nc.close()
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def fire_bytes(automation_id: str, fire_id: str) -> bytes:
    """A manual FireEvent, stamped now."""
    from autom.api.events.v1 import events_pb2
    from autom.core.protoconv import dict_to_struct, to_timestamp

    return events_pb2.FireEvent(
        fire_id=fire_id,
        workspace_id=WS,
        automation_id=automation_id,
        automation_version=1,
        trigger_type="manual",
        fired_time=to_timestamp(datetime.now(UTC)),
        inputs=dict_to_struct({"n": 1}),
        principal="user:bench",
    ).SerializeToString()


async def publish(js: Any, automation_id: str, fire_id: str) -> float:
    """Publish one fire; returns the wall time it was handed to JetStream."""
    sent = time.time()
    await js.publish(
        f"automations.fires.{WS}",
        fire_bytes(automation_id, fire_id),
        headers={"Nats-Msg-Id": fire_id},
    )
    return sent


async def publish_many(js: Any, automation_id: str, fire_ids: list[str]) -> dict[str, float]:
    """Publish fires in chunks; fire id -> publish time."""
    sent: dict[str, float] = {}
    chunk = 500
    for base in range(0, len(fire_ids), chunk):
        ids = fire_ids[base : base + chunk]
        times = await asyncio.gather(*(publish(js, automation_id, f) for f in ids))
        sent.update(zip(ids, times, strict=True))
    return sent


async def wait_terminal(conn: Any, prefix: str, n: int, timeout: float) -> list[Any]:
    """Wait until n runs of this batch are terminal; return (fire_id, status, times) rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Count only (cheap), so polling does not steal CPU from the executor under test.
        done = await conn.fetchval(
            "SELECT count(*) FROM executor.runs WHERE fire_id LIKE $1 AND finished_at IS NOT NULL",
            prefix + "%",
        )
        if done >= n:
            break
        await asyncio.sleep(0.1)
    rows = await conn.fetch(
        "SELECT fire_id, status, created_at, finished_at FROM executor.runs "
        "WHERE fire_id LIKE $1 AND finished_at IS NOT NULL",
        prefix + "%",
    )
    return list(rows)


def pct(values: list[float], q: float) -> float:
    """Percentile (nearest rank) in milliseconds, rounded."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index] * 1000, 1)


async def drain(stack: dict[str, Any], n: int) -> dict[str, Any]:
    """Throughput: a backlog of n fires published before the executor started, drained."""
    rows = await wait_terminal(stack["conn"], "backlog:", n, timeout=120)
    succeeded = sum(1 for r in rows if r["status"] == "succeeded")
    first = min(r["created_at"].timestamp() for r in rows)
    last = max(r["finished_at"].timestamp() for r in rows)
    return {
        "runs": n,
        "succeeded": succeeded,
        "seconds": round(last - first, 3),
        "runs_per_s": round(len(rows) / (last - first), 1),
        "seconds_from_executor_start": round(last - stack["started"], 3),
    }


async def burst(stack: dict[str, Any], n: int) -> dict[str, Any]:
    """Publish n fires at once from this process; fire -> terminal latency under a burst."""
    prefix = f"burst:{uuid.uuid4().hex[:6]}:"
    sent = await publish_many(
        stack["js"], stack["automation_id"], [f"{prefix}{i}" for i in range(n)]
    )
    rows = await wait_terminal(stack["conn"], prefix, n, timeout=120)
    latencies = [r["finished_at"].timestamp() - sent[r["fire_id"]] for r in rows]
    return {
        "runs": n,
        "completed": len(rows),
        "latency_p50_ms": pct(latencies, 50),
        "latency_p99_ms": pct(latencies, 99),
    }


async def paced(stack: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    """Publish at a steady rate; fire -> terminal latency percentiles."""
    prefix = f"paced:{uuid.uuid4().hex[:6]}:"
    js, aid = stack["js"], stack["automation_id"]
    n = int(rate * seconds)
    sent: dict[str, float] = {}
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one(fire_id: str) -> None:
        sent[fire_id] = await publish(js, aid, fire_id)

    for i in range(n):
        target = start + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(f"{prefix}{i}"))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    rows = await wait_terminal(stack["conn"], prefix, n, timeout=60)
    latencies = [r["finished_at"].timestamp() - sent[r["fire_id"]] for r in rows]
    return {
        "rate_per_s": rate,
        "runs": n,
        "completed": len(rows),
        "latency_p50_ms": pct(latencies, 50),
        "latency_p99_ms": pct(latencies, 99),
        "latency_max_ms": pct(latencies, 100),
    }


ONE_STEP = {
    "name": "bench-one-step",
    "plan": [{"id": "t", "action": "transform", "params": {"output": {"n": "{{ inputs.n + 1 }}"}}}],
}


# A step that is not side-effect free takes the claim/lease path (two commits per run).
ONE_LEASED_STEP = {
    "name": "bench-one-leased-step",
    "plan": [{"id": "w", "action": "wait", "params": {"duration": "0s"}}],
}


async def run(n: int, rate: float, paced_seconds: float) -> dict[str, Any]:
    """The whole benchmark."""
    with servers() as (pg_url, nats_url):
        async with executor_stack(
            pg_url, nats_url, ONE_STEP, backlog=n, max_in_flight=256
        ) as stack:
            result_drain = await drain(stack, n)
            result_paced = await paced(stack, rate, paced_seconds)
            result_burst = await burst(stack, 1000)
        leased_n = max(1, n // 2)
        async with executor_stack(
            pg_url, nats_url, ONE_LEASED_STEP, backlog=leased_n, max_in_flight=256
        ) as stack:
            result_leased = await drain(stack, leased_n)
    return {
        "runs_per_s": result_drain["runs_per_s"],
        "leased_path_runs_per_s": result_leased["runs_per_s"],
        "paced_p50_ms": result_paced["latency_p50_ms"],
        "paced_p99_ms": result_paced["latency_p99_ms"],
        "throughput": result_drain,
        "paced": result_paced,
        "burst_1000": result_burst,
        "leased_path": result_leased,
        "target": {"runs_per_s": 1000, "paced_p99_ms": 100},
        "cpus": os.cpu_count(),
    }


def main() -> None:
    """Print one JSON object."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    n = int(os.environ.get("AUTOM_BENCH_RUNS", "5000"))
    rate = float(os.environ.get("AUTOM_BENCH_RATE", "200"))
    seconds = float(os.environ.get("AUTOM_BENCH_PACED_SECONDS", "10"))
    print(json.dumps({**asyncio.run(run(n, rate, seconds)), "durability": durability()}))


if __name__ == "__main__":
    main()
