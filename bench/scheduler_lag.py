"""Scheduler lag: how late fires reach JetStream when many schedules are due at once.

Prints one JSON object: for 1,000 and 10,000 schedules due in the same second and for a
steady ~200 fires/s, the lag from the nominal time to the JetStream publish ack (stamped
in `fires.published_at`) and to receipt by a subscriber: p50/p99/max, fires/s, missed,
duplicates; and the scheduler's RSS, also with 100,000 active schedules.

The scheduler runs as its own process (`python -m autom.scheduler`), so its RSS is its own
and the measuring subscriber does not share its event loop. Starts embedded PostgreSQL
(fsync on) and NATS unless AUTOM_BENCH_DATABASE_URL / AUTOM_BENCH_NATS_URL name servers.
Schedules are inserted straight into the scheduler's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import durability, servers

WS = "bench"
STEADY_RATE = 200
STEADY_SECONDS = 15


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank, in milliseconds rounded."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class Receiver:
    """Receipt times of fire events seen on automations.fires.> (core NATS)."""

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[float, float]]] = {}

    async def on_msg(self, msg: Any) -> None:
        from autom.api.events.v1 import events_pb2

        now = time.time()
        event = events_pb2.FireEvent.FromString(msg.data)
        nominal = event.scheduled_for.seconds + event.scheduled_for.nanos / 1e9
        self.received.setdefault(event.fire_id, []).append((nominal, now))


def schedule_rows(prefix: str, n: int, cron: str, nominal: datetime) -> list[tuple[Any, ...]]:
    """Rows for scheduler.schedules, all next due at `nominal`."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        automation_id = f"{prefix}-{i}"
        rows.append(
            (
                f"{automation_id}:tick",  # id
                WS,
                automation_id,
                1,  # automation_version
                "tick",
                cron,
                "UTC",
                "shift",
                "first",
                "latest",
                3600.0,  # catchup_window_s
                0.0,  # jitter_s
                None,
                None,
                None,
                "{}",
                "user:bench",
                True,
                nominal,
                nominal,
                None,
                0,
                0,
                0,
                now,
                now,
            )
        )
    return rows


COLUMNS = [
    "id",
    "workspace_id",
    "automation_id",
    "automation_version",
    "trigger_id",
    "cron",
    "timezone",
    "on_missing",
    "on_repeated",
    "catchup",
    "catchup_window_s",
    "jitter_s",
    "start_at",
    "end_at",
    "max_fires",
    "inputs",
    "principal",
    "enabled",
    "next_fire_at",
    "due_at",
    "last_fired_at",
    "fired_count",
    "missed_count",
    "skipped_count",
    "created_at",
    "updated_at",
]


async def insert_schedules(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """COPY rows into scheduler.schedules."""
    await conn.copy_records_to_table(
        "schedules", schema_name="scheduler", records=rows, columns=COLUMNS
    )


async def burst(conn: Any, receiver: Receiver, n: int, lead_s: float = 3.0) -> dict[str, Any]:
    """n schedules due in the same second; lag to publish ack and to receipt."""
    prefix = f"burst{n}-{uuid.uuid4().hex[:6]}"
    nominal = datetime.fromtimestamp(int(time.time() + lead_s), UTC)
    # A yearly cron: each schedule fires once in the measured second and then rests.
    await insert_schedules(conn, schedule_rows(prefix, n, "0 0 1 1 *", nominal))
    return await measure(conn, receiver, prefix, n, nominal, nominal, timeout=60)


async def steady(conn: Any, receiver: Receiver) -> dict[str, Any]:
    """STEADY_RATE per-second schedules for STEADY_SECONDS: ~STEADY_RATE fires/s."""
    prefix = f"steady-{uuid.uuid4().hex[:6]}"
    first = datetime.fromtimestamp(int(time.time() + 2), UTC)
    last = first + timedelta(seconds=STEADY_SECONDS - 1)
    await insert_schedules(conn, schedule_rows(prefix, STEADY_RATE, "* * * * * *", first))
    await asyncio.sleep((last - datetime.now(UTC)).total_seconds() + 0.5)
    await conn.execute(
        "UPDATE scheduler.schedules SET enabled = false WHERE id LIKE $1", f"{prefix}-%"
    )
    expected = STEADY_RATE * STEADY_SECONDS
    return await measure(conn, receiver, prefix, expected, first, last, timeout=30)


async def measure(
    conn: Any,
    receiver: Receiver,
    prefix: str,
    expected: int,
    first: datetime,
    last: datetime,
    *,
    timeout: float,
) -> dict[str, Any]:
    """Wait for the expected fires in [first, last] and compute lag figures."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await conn.fetch(
            "SELECT fire_id, scheduled_for, published_at FROM scheduler.fires"
            " WHERE fire_id LIKE $1 AND scheduled_for BETWEEN $2 AND $3",
            f"{prefix}-%",
            first,
            last,
        )
        published = [r for r in rows if r["published_at"] is not None]
        got = [
            fid
            for fid, seen in receiver.received.items()
            if fid.startswith(prefix + "-") and first.timestamp() <= seen[0][0] <= last.timestamp()
        ]
        if (len(published) >= expected and len(got) >= expected) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # late duplicates, if any, would arrive now
    ack_lag = [(r["published_at"] - r["scheduled_for"]).total_seconds() * 1000 for r in published]
    lo, hi = first.timestamp(), last.timestamp()
    mine = {
        fid: seen
        for fid, seen in receiver.received.items()
        if fid.startswith(prefix + "-") and lo <= seen[0][0] <= hi
    }
    recv_lag = [(seen[0][1] - seen[0][0]) * 1000 for seen in mine.values()]
    duplicates = sum(len(seen) - 1 for seen in mine.values())
    rows_by_id = Counter(r["fire_id"] for r in rows)
    span = max(recv_lag, default=0.0) / 1000 + (last - first).total_seconds()
    return {
        "fires": expected,
        "published": len(published),
        "received": len(mine),
        "missed": expected - len(mine),
        "duplicates": duplicates + sum(n - 1 for n in rows_by_id.values()),
        "ack_lag_ms": {"p50": pct(ack_lag, 0.5), "p99": pct(ack_lag, 0.99), "max": pct(ack_lag, 1)},
        "receive_lag_ms": {
            "p50": pct(recv_lag, 0.5),
            "p99": pct(recv_lag, 0.99),
            "max": pct(recv_lag, 1),
        },
        "fires_per_s": round(len(mine) / span, 1) if span > 0 else None,
    }


async def run(pg_url: str, nats_url: str) -> dict[str, Any]:
    """Fresh database, a scheduler process, the scenarios; returns the figures."""
    import asyncpg
    import nats

    from autom.core import bus
    from autom.devstack.testing import service_env
    from autom.scheduler import db

    name = f"autom_bench_sched_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    await db.migrate(url)
    nc = await nats.connect(nats_url)
    if not os.environ.get("AUTOM_BENCH_NATS_URL"):
        js = nc.jetstream()
        # Only an embedded server is ours to wipe; a named one may be shared.
        with contextlib.suppress(Exception):
            await js.delete_stream("AUTOM_FIRES")
        # Standing in for the owners of the streams the scheduler consumes: without them its
        # consumers stay down and it would exit (non-zero) after the supervision bound.
        await bus.ensure_streams(js, (bus.DEFINITIONS_STREAM, bus.RUNS_STREAM, bus.AUTH_STREAM))
    receiver = Receiver()
    await nc.subscribe("automations.fires.>", cb=receiver.on_msg)
    env = {
        **os.environ,
        "AUTOM_DATABASE_URL": url,
        "AUTOM_NATS_URL": nats_url,
        **service_env("scheduler"),
        "AUTOM_GRPC_PORT": "0",
        "AUTOM_SCHEDULER_RESYNC_ON_START": "false",
        "AUTOM_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.scheduler",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(3)  # let the process import, connect and reach its loop
        if proc.returncode is not None:
            raise RuntimeError(f"scheduler exited with {proc.returncode}")
        idle_rss = rss_mb(proc.pid)
        results: dict[str, Any] = {"scheduler_rss_idle_mb": idle_rss}
        results["same_second_1000"] = await burst(conn, receiver, 1000)
        results["same_second_10000"] = await burst(conn, receiver, 10_000, lead_s=4.0)
        results["steady_200_per_s"] = await steady(conn, receiver)
        results["scheduler_rss_after_load_mb"] = rss_mb(proc.pid)
        far = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
        await insert_schedules(conn, schedule_rows("idle", 100_000, "0 0 1 1 *", far))
        active = await conn.fetchval("SELECT count(*) FROM scheduler.schedules WHERE enabled")
        results["with_100000_active"] = await burst(conn, receiver, 1000)
        results["with_100000_active"]["active_schedules"] = active
        results["scheduler_rss_100000_active_mb"] = rss_mb(proc.pid)
        return results
    finally:
        await conn.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await nc.close()
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    """Run the scenarios and print one JSON object."""
    started = time.monotonic()
    with servers() as (pg_url, nats_url):
        results = asyncio.run(run(pg_url, nats_url))
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    results["durability"] = durability()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
