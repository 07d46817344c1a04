"""Scale-out on a loopback cluster: runs/s by executor replicas, fire lag while NATS loses a node.

Starts the fault suite's cluster (autom.devstack.faults.FaultStack): three clustered
nats-servers from the wheel with R3 streams (`sync_interval: always`), PostgreSQL with fsync
on, and definitions, two schedulers and three executors as their own processes, migrated by
their own `migrate` commands. Then, through the public gRPC API with bench.api_client:

- scale-out: a burst of one-step (`wait 0s`) StartRuns, 64 in flight and spread over the live
  executor replicas as a load balancer would, with 1, 2 and 3 replicas running (each twice,
  the best kept); runs/s from the first submit to the last run's `finish_time`. Every
  process shares this machine's cores, so the figure to quote is the ratio to 1 replica,
  not the absolute runs/s.
- leader kill: schedules firing every second, then SIGKILL of the AUTOM_FIRES stream's
  leader node; fire lag (nominal time -> first step started, from executor.runs and
  executor.run_steps) p50/p99/max before the kill and during the kill window, when a new
  leader was seen, and missed / duplicated fires from the first second every schedule had
  run until after the node's restart.

The client (bench.api_client's) runs in this process, which does nothing else meanwhile: the
servers and services are its children. Prints one JSON object as its last line.
AUTOM_BENCH_SCALEOUT_BURST (runs per sample, default 400) and
AUTOM_BENCH_SCALEOUT_SCHEDULES (automations firing every second, default 10) size it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.api_client import Client, burst, pct

if TYPE_CHECKING:
    from autom.devstack.faults import FaultStack

WORKSPACE = "default"
EXECUTORS = ("executor", "executor-2", "executor-3")
SHAPE: dict[str, Any] = {"nats_nodes": 3, "replicas": {"scheduler": 2, "executor": 3}}
FIRES_STREAM = "AUTOM_FIRES"
# Up, then down again: each replica count is measured twice, apart in time, so load from
# outside (other tenants of this machine) shows as a spread between samples; the best counts.
ORDER = (1, 2, 3, 3, 2, 1)
IDLE_S = 3.0
WAIT0 = [{"id": "s", "action": "wait", "params": {"duration": "0s"}}]
# Seconds of fires measured before the kill, and how long the killed node stays down.
BEFORE_S = 15.0
KILL_S = 15.0
# Bound on every run of the window reaching a terminal state after the node is back.
SETTLE_S = 90.0
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out", "skipped")


# ---- pure helpers (tested) --------------------------------------------------------------
def ratios(runs_per_s: Mapping[int, float]) -> dict[int, float]:
    """Each replica count's runs/s divided by the 1-replica figure, 2 decimals."""
    base = runs_per_s.get(1)
    if not base:
        return {n: float("nan") for n in runs_per_s}
    return {n: round(value / base, 2) for n, value in sorted(runs_per_s.items())}


def instants(start: float, end: float) -> list[float]:
    """Every whole second (epoch) in [start, end]: what a `* * * * * *` schedule must fire."""
    return [float(s) for s in range(math.ceil(start), math.floor(end) + 1)]


def fire_accounting(
    expected: Iterable[tuple[str, float]], fired: Iterable[tuple[str, float]]
) -> dict[str, int]:
    """Expected (automation, nominal second) fires against the runs' (automation, nominal)."""
    expected, fired = list(expected), list(fired)
    runs = Counter((automation, round(nominal)) for automation, nominal in fired)
    wanted = {(automation, round(nominal)) for automation, nominal in expected}
    return {
        "expected": len(wanted),
        "missed": len(missing(expected, fired)),
        "duplicated": sum(runs[key] - 1 for key in wanted if runs[key] > 1),
    }


def missing(
    expected: Iterable[tuple[str, float]], fired: Iterable[tuple[str, float]]
) -> list[tuple[str, float]]:
    """The expected (automation, nominal second) fires without a run, in time order."""
    runs = {(automation, round(nominal)) for automation, nominal in fired}
    wanted = {(automation, float(round(nominal))) for automation, nominal in expected}
    return sorted(
        (key for key in wanted if (key[0], round(key[1])) not in runs), key=lambda k: k[1]
    )


def lag_summary(lags_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of lags given in seconds, in milliseconds, with their count."""
    values = list(lags_s)
    return {
        "fires": len(values),
        "p50_ms": pct(values, 0.50),
        "p99_ms": pct(values, 0.99),
        "max_ms": pct(values, 1.0),
    }


# ---- the stack --------------------------------------------------------------------------
def _owner_token(signing_key: str) -> str:
    from autom.core.auth import Role, TokenSigner

    return TokenSigner(signing_key).issue(
        subject="user:bench", workspace_id=WORKSPACE, role=Role.OWNER
    )[0]


def _client(stack: FaultStack, token: str, executors: Sequence[str]) -> Client:
    """bench.api_client's client, StartRun spread over `executors`."""
    pids = {name: stack.pid(name) for name in stack.instances if stack.pid(name)}
    pids |= {f"nats-{i}": node.pid for i, node in enumerate(stack.nats_nodes) if node.pid}
    if stack.postgres.pid:
        pids["postgres"] = stack.postgres.pid
    return Client(
        {
            "token": token,
            "addrs": {s: stack.address(s) for s in ("definitions", "executor")},
            "executor_replicas": [stack.address(e) for e in executors[1:]],
            "pids": pids,
        }
    )


async def _set_replicas(stack: FaultStack, count: int) -> None:
    """The first `count` executor instances running, the others stopped gracefully."""
    for i, name in enumerate(EXECUTORS):
        running = stack.pid(name) is not None
        if i < count and not running:
            await stack.restart(name)
        elif i >= count and running:
            # SIGTERM, as a scale-down: a SIGKILLed replica's pending pull requests could
            # take messages that then wait out the ack timeout inside the next burst.
            await stack.stop(name)


async def scale_out(stack: FaultStack, token: str, n: int) -> dict[str, Any]:
    """The burst with 1, 2 and 3 executor replicas, each count measured twice (ORDER)."""
    samples: dict[int, list[dict[str, Any]]] = {}
    for count in ORDER:
        await _set_replicas(stack, count)
        c = _client(stack, token, EXECUTORS[:count])
        try:
            automation_id = await c.create(WAIT0)
            # Warm every replica's caches and connections before the clock starts.
            await asyncio.gather(*(c.start(automation_id) for _ in range(10 * count)))
            await c.drained(automation_id)
            # What the idle cluster burns (due loops, sweeps, heartbeats): part of every burst.
            before = c.cpu()
            await asyncio.sleep(IDLE_S)
            idle = sum(c.cpu().values()) - sum(before.values())
            # Load from outside the cluster (this machine's other tenants) shows here.
            load = round(os.getloadavg()[0], 1)
            result = {
                **await burst(c, automation_id, n),
                "idle_cores": round(idle / IDLE_S, 2),
                "loadavg_1m_before": load,
            }
        finally:
            for ch in c.channels:
                await ch.close()
        samples.setdefault(count, []).append(result)
        print(f"scaleout: {count} executor(s): {result['runs_per_s']} runs/s", file=sys.stderr)
    best = {count: max(rs, key=lambda r: float(r["runs_per_s"])) for count, rs in samples.items()}
    figures = {count: float(r["runs_per_s"]) for count, r in sorted(best.items())}
    return {
        "runs_per_s": {str(k): v for k, v in figures.items()},
        "ratio_vs_1": {str(k): v for k, v in ratios(figures).items()},
        "samples_runs_per_s": {
            str(k): [r["runs_per_s"] for r in rs] for k, rs in sorted(samples.items())
        },
        "best_sample": {str(k): v for k, v in sorted(best.items())},
    }


# ---- leader kill ------------------------------------------------------------------------
def every_second(start_at: float) -> list[dict[str, Any]]:
    """A schedule trigger firing each second from `start_at`, catching up missed instants."""
    when = datetime.fromtimestamp(start_at, UTC).isoformat().replace("+00:00", "Z")
    config = {"cron": "* * * * * *", "catchup": "all", "catchup_window": "1h", "start_at": when}
    return [{"id": "tick", "type": "schedule", "config": config}]


async def _fire_records(database_url: str, automation_ids: list[str]) -> list[Any]:
    """Scheduled runs of the automations: nominal time, when its fire reached JetStream (the
    scheduler's record), status, attempt, first step's start."""
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return list(
            await conn.fetch(
                "SELECT r.automation_id, extract(epoch FROM r.scheduled_for)::float8 AS nominal,"
                " extract(epoch FROM f.published_at)::float8 AS published, r.attempt, r.status,"
                " (SELECT extract(epoch FROM min(s.started_at))::float8"
                "  FROM executor.run_steps s WHERE s.run_id = r.id) AS started"
                " FROM executor.runs r LEFT JOIN scheduler.fires f ON f.fire_id = r.fire_id"
                " WHERE r.automation_id = ANY($1::text[]) AND r.scheduled_for IS NOT NULL",
                automation_ids,
            )
        )
    finally:
        await conn.close()


async def _missing_fires(
    database_url: str, lost: list[tuple[str, float]], killed_at: float
) -> list[dict[str, Any]]:
    """What the scheduler recorded for fires without a run (first 20): its fire row, if any."""
    import asyncpg

    if not lost:
        return []
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        out = []
        for automation_id, nominal in lost[:20]:
            row = await conn.fetchrow(
                "SELECT kind, extract(epoch FROM published_at)::float8 AS published, run_status"
                " FROM scheduler.fires WHERE schedule_id = $1"
                " AND scheduled_for = to_timestamp($2::float8)",
                f"{automation_id}:tick",
                nominal,
            )
            fire: dict[str, Any] = {"nominal_after_kill_s": round(nominal - killed_at, 1)}
            if row is None:
                fire["fire_row"] = None
            else:
                published = row["published"]
                fire["fire_row"] = {
                    "kind": row["kind"],
                    "published_after_ms": round((published - nominal) * 1000, 1)
                    if published
                    else None,
                    "run_status": row["run_status"],
                }
            out.append(fire)
        return out
    finally:
        await conn.close()


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def _sleep_until(epoch: float) -> None:
    await asyncio.sleep(max(0.0, epoch - time.time()))


async def leader_kill(stack: FaultStack, token: str, schedules: int) -> dict[str, Any]:
    """Fire lag before and while the fires stream's leader node is dead; missed/duplicated."""
    c = _client(stack, token, EXECUTORS)
    try:
        start_at = math.floor(time.time()) + 3.0
        automation_ids = [await c.create(WAIT0, every_second(start_at)) for _ in range(schedules)]
    finally:
        for ch in c.channels:
            await ch.close()

    async def warmed() -> bool:
        done = [r for r in await _fire_records(stack.database_url, automation_ids) if r["started"]]
        return {r["automation_id"] for r in done} == set(automation_ids)

    await _until(warmed, 60, "a first started run of every schedule")
    before_from = math.ceil(time.time())
    await _sleep_until(before_from + BEFORE_S)

    leader = await stack.stream_leader(FIRES_STREAM)
    killed_at = time.time()
    stack.kill_nats(leader)
    successor = await stack.stream_leader(FIRES_STREAM, timeout=60)
    elected_s = time.time() - killed_at
    await _sleep_until(killed_at + KILL_S)
    stack.restart_nats(leader)
    restarted_at = time.time()
    cutoff = math.floor(time.time()) + 2.0
    await _sleep_until(cutoff + 0.5)

    # From the measured window's start, not start_at: a schedule counts from when the
    # scheduler learns of it, which under load can be seconds after start_at.
    expected = [(a, s) for a in automation_ids for s in instants(before_from, cutoff)]

    async def settled() -> bool:
        records = await _fire_records(stack.database_url, automation_ids)
        done = {
            (r["automation_id"], round(r["nominal"])) for r in records if r["status"] in TERMINAL
        }
        return all((a, round(s)) in done for a, s in expected)

    settle_error = None
    try:
        await _until(settled, SETTLE_S, "every fire of the window terminal")
    except TimeoutError as exc:  # reported as missed fires below, not a crash
        settle_error = str(exc)
    records = await _fire_records(stack.database_url, automation_ids)
    in_window = [r for r in records if r["nominal"] <= cutoff]
    fired = [(r["automation_id"], r["nominal"]) for r in in_window]
    accounting = fire_accounting(expected, fired)
    lost = await _missing_fires(stack.database_url, missing(expected, fired), killed_at)

    def window(lo: float, hi: float) -> dict[str, Any]:
        started = [r for r in in_window if r["started"] and lo <= r["nominal"] < hi]
        summary: dict[str, Any] = lag_summary([r["started"] - r["nominal"] for r in started])
        published = [r["published"] - r["nominal"] for r in started if r["published"]]
        summary["publish_p99_ms"] = pct(published, 0.99)
        if started:
            # Where the worst lag came from: publishing the fire or starting its run.
            worst = max(started, key=lambda r: r["started"] - r["nominal"])
            summary["slowest"] = {
                "nominal_after_kill_s": round(worst["nominal"] - killed_at, 1),
                "published_after_ms": round((worst["published"] - worst["nominal"]) * 1000, 1)
                if worst["published"]
                else None,
                "attempt": worst["attempt"],
            }
        return summary

    return {
        "schedules_every_second": schedules,
        "killed_node": leader,
        "new_leader_node": successor,
        # Polled (a fresh connection, 2 s request timeout): an upper bound on the election.
        "new_leader_seen_after_s": round(elected_s, 2),
        "node_down_s": round(restarted_at - killed_at, 1),
        # A fire due in the last second before the kill may still be in flight when the node
        # dies: it counts to the kill window.
        "lag_before": window(before_from, killed_at - 1),
        "lag_during_kill": window(killed_at - 1, killed_at + KILL_S),
        "lag_after_restart": window(restarted_at, cutoff + 1),
        **accounting,
        "not_terminal": sum(1 for r in in_window if r["status"] not in TERMINAL),
        **({"missed_fires": lost} if lost else {}),
        **({"settle_error": settle_error} if settle_error else {}),
    }


async def _replicas(stack: FaultStack, stream: str) -> int:
    import nats

    nc = await nats.connect(stack.nats_servers)
    try:
        return (await nc.jetstream().stream_info(stream)).config.num_replicas or 1
    finally:
        await nc.close()


async def run(root: Path, burst_n: int, schedules: int) -> dict[str, Any]:
    """Start the cluster, measure both parts, stop everything."""
    from autom.core.auth import generate_private_key, private_key_text
    from autom.devstack.faults import FaultStack

    signing_key = private_key_text(generate_private_key())
    quiet = {"AUTOM_LOG_LEVEL": os.environ.get("AUTOM_LOG_LEVEL", "WARNING")}
    stack = FaultStack(
        root,
        signing_key=signing_key,
        env={name: quiet for name in ("definitions", "scheduler", "executor")},
        **SHAPE,
    )
    try:
        started = time.monotonic()
        await stack.start()
        print(f"scaleout: cluster up in {time.monotonic() - started:.0f} s", file=sys.stderr)
        token = _owner_token(signing_key)
        return {
            "cluster": {
                "nats_nodes": len(stack.nats_nodes),
                "fires_stream_replicas": await _replicas(stack, FIRES_STREAM),
                "processes": stack.instances,
                "nats_sync_interval": stack.nats.sync_interval,
                "postgres_fsync": True,
                "cpus": os.cpu_count(),
            },
            "scale_out": await scale_out(stack, token, burst_n),
            "leader_kill": await leader_kill(stack, token, schedules),
        }
    finally:
        stack.close()


def main() -> None:
    """Print one JSON object."""
    burst_n = int(os.environ.get("AUTOM_BENCH_SCALEOUT_BURST", "400"))
    schedules = int(os.environ.get("AUTOM_BENCH_SCALEOUT_SCHEDULES", "10"))
    # Outside any pytest temp root, removed whatever happens.
    root = Path(tempfile.mkdtemp(prefix="autom-bench-scaleout-"))
    try:
        result = asyncio.run(run(root, burst_n, schedules))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
