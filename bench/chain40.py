"""chain40: one run of 40 sequential `wait 10ms` steps; wall time and overhead per step.

Prints one JSON object. Same servers as executor_throughput (embedded unless
AUTOM_BENCH_DATABASE_URL / AUTOM_BENCH_NATS_URL). Each step's record is committed as it finishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time
import uuid
from typing import Any

from bench import servers
from bench.executor_throughput import executor_stack, publish, wait_terminal

STEPS = 40
WAIT_S = 0.010
CHAIN = {
    "name": "chain40",
    "plan": [
        {"id": f"s{i}", "action": "wait", "params": {"duration": "10ms"}} for i in range(STEPS)
    ],
}


async def one(stack: dict[str, Any]) -> dict[str, float]:
    """Fire one chain and wait for it; wall time from publish to terminal."""
    fire_id = f"chain:{uuid.uuid4().hex}"
    sent = await publish(stack["js"], stack["automation_id"], fire_id)
    started = time.monotonic()
    rows = await wait_terminal(stack["conn"], fire_id, 1, timeout=30)
    assert rows and rows[0]["status"] == "succeeded", rows
    row = await stack["conn"].fetchrow(
        "SELECT created_at, finished_at FROM executor.runs WHERE fire_id = $1", fire_id
    )
    wall = row["finished_at"].timestamp() - sent
    run_time = (row["finished_at"] - row["created_at"]).total_seconds()
    del started
    return {"wall_s": wall, "run_s": run_time}


async def run(repeats: int = 5) -> dict[str, Any]:
    """Warm up once, then measure `repeats` chains one after another."""
    with servers() as (pg_url, nats_url):
        async with executor_stack(pg_url, nats_url, CHAIN) as stack:
            await one(stack)
            results = [await one(stack) for _ in range(repeats)]
    walls = [r["wall_s"] for r in results]
    median = statistics.median(walls)
    return {
        "wall_s": round(median, 3),
        "wall_best_s": round(min(walls), 3),
        "run_s": round(statistics.median(r["run_s"] for r in results), 3),
        "overhead_per_step_ms": round((median - STEPS * WAIT_S) / STEPS * 1000, 2),
        "steps": STEPS,
        "target_wall_s": 0.55,
    }


def main() -> None:
    """Print one JSON object."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(asyncio.run(run())))


if __name__ == "__main__":
    main()
