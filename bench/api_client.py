"""The client of bench.api: public gRPC API only, run in its own process.

Reads one JSON object on stdin (addresses, dev token, PIDs of the stack's processes, sizes;
optionally `executor_replicas`, more executor addresses that take StartRun in turn) and
prints one JSON object. Three phases against one `wait 0s` automation and one chain40:

- open loop: StartRun sent at `rate`/s for `seconds`, each at its intended time whatever the
  server does; latency runs from that intended time, so a stalled server cannot hide its queue.
- burst: `burst` StartRuns, 64 in flight; runs/s from the first submit to the last run's
  `finish_time` (the server's own record), CPU seconds per 1,000 runs of every process.
- chain40: 40 sequential `wait 10ms` steps, 1 warm-up then 5; the wall ends when WatchRun
  delivers the terminal event to this client.
- definitions: `creates` CreateAutomation calls one after another (latency of each), then
  GetAutomation of those automations for `seconds`, IN_FLIGHT at a time (calls/s).
- schedules (first, so the workspace's active-automation quota has room): `schedules`
  automations with a `* * * * *` UTC trigger, all due at one minute boundary at least 20 s
  after they exist; lag from that nominal time to each run's step starting (the step record's
  start time), missed and duplicated fires; then they are deleted.

Before any load, `idle_rss_mb` is the resident memory of each process of the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2 as xpb
from autom.api.executor.v1 import executor_service_pb2_grpc as xgrpc
from autom.core.grpcserver import channel

IN_FLIGHT = 64
CHAIN_STEPS = 40
TICK = os.sysconf("SC_CLK_TCK")
ACTIVE = (epb.RUN_STATUS_PENDING, epb.RUN_STATUS_RUNNING)


def _cpu_of(pid: int) -> float:
    """User + system CPU of a process and of its children it has reaped (exited backends)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in stat[11:15]) / TICK


def _tree_cpu(root: int) -> float:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(stat[1]), []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += _cpu_of(pid)
        todo += children.get(pid, [])
    return total


def pct(values: list[float], q: float) -> float:
    """Nearest-rank q-quantile in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _rss_mb(pid: int) -> float:
    """Resident memory of one process, MiB (0 when it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _ts(t: Any) -> float:
    return float(t.seconds + t.nanos / 1e9)


class Client:
    """Stubs of the public API with the dev token."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.pids: dict[str, int] = conf["pids"]
        self.channels = [
            channel(conf["addrs"][s], conf["token"]) for s in ("definitions", "executor")
        ]
        self.defs = dgrpc.DefinitionsServiceStub(self.channels[0])
        self.ex = xgrpc.ExecutorServiceStub(self.channels[1])
        # Further executor replicas take StartRun in turn, as a load balancer would spread it.
        replicas = [channel(addr, conf["token"]) for addr in conf.get("executor_replicas", [])]
        self.channels += replicas
        stubs = [self.ex, *(xgrpc.ExecutorServiceStub(ch) for ch in replicas)]
        self._starters = itertools.cycle(stubs)

    def cpu(self) -> dict[str, float]:
        return {name: _tree_cpu(pid) for name, pid in self.pids.items()}

    async def create(
        self, plan: list[dict[str, Any]], triggers: list[dict[str, Any]] | None = None
    ) -> str:
        raw = {"name": f"bench-{uuid.uuid4().hex[:8]}", "plan": plan, "triggers": triggers or []}
        definition = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
        created = await self.defs.CreateAutomation(
            dpb.CreateAutomationRequest(request_id=uuid.uuid4().hex, definition=definition)
        )
        return str(created.automation.id)

    def rss(self) -> dict[str, float]:
        return {name: _rss_mb(pid) for name, pid in self.pids.items()}

    async def start(self, automation_id: str) -> Any:
        request = xpb.StartRunRequest(request_id=uuid.uuid4().hex, automation_id=automation_id)
        return (await next(self._starters).StartRun(request, timeout=60)).run

    async def drained(self, automation_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = False
            for status in ACTIVE:
                page = await self.ex.ListRuns(
                    xpb.ListRunsRequest(automation_id=automation_id, status=status, page_size=1)
                )
                busy = busy or bool(page.runs)
            if not busy:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"runs of {automation_id} still active after {timeout}s")

    async def finish_times(self, automation_id: str) -> list[float]:
        out, token = [], ""
        while True:
            page = await self.ex.ListRuns(
                xpb.ListRunsRequest(automation_id=automation_id, page_size=500, page_token=token)
            )
            out += [_ts(r.finish_time) for r in page.runs if r.status == epb.RUN_STATUS_SUCCEEDED]
            token = page.next_page_token
            if not token:
                return out


async def _limited(calls: list[Any]) -> list[Any]:
    """Await coroutines IN_FLIGHT at a time, results in order."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def open_loop(c: Client, automation_id: str, rate: float, seconds: float) -> dict[str, Any]:
    """StartRun at intended times t0 + i/rate; latency from the intended time."""
    count = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(intended: float) -> None:
        try:
            await c.start(automation_id)
        except Exception as exc:
            errors.append(type(exc).__name__)
            return
        latencies.append(time.monotonic() - intended)

    tasks = []
    t0 = time.monotonic() + 0.05
    for i in range(count):
        intended = t0 + i / rate
        delay = intended - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended)))
    sent_s = time.monotonic() - t0
    await asyncio.gather(*tasks)
    await c.drained(automation_id)
    return {
        "target_rate": rate,
        "sent": count,
        "send_rate": round(count / sent_s, 1),
        "errors": len(errors),
        "startrun_p50_ms": pct(latencies, 0.50),
        "startrun_p99_ms": pct(latencies, 0.99),
        "startrun_max_ms": pct(latencies, 1.0),
    }


async def burst(c: Client, automation_id: str, n: int) -> dict[str, Any]:
    """n StartRuns, IN_FLIGHT at a time; fire -> terminal from the server's records."""
    before = c.cpu()
    first = time.time()
    await _limited([c.start(automation_id) for _ in range(n)])
    submitted = time.time() - first
    await c.drained(automation_id)
    after = c.cpu()
    # The warm-up runs of this automation finished before `first`.
    finished = [t for t in await c.finish_times(automation_id) if t >= first]
    span = max(finished) - first
    per_1k = {k: round((after[k] - before[k]) * 1000 / n, 2) for k in before}
    return {
        "runs": n,
        "succeeded": len(finished),
        "submits_per_s": round(n / submitted, 1),
        "runs_per_s": round(len(finished) / span, 1),
        "cpu_s_per_1k_runs": per_1k,
        "cpu_s_per_1k_runs_total": round(sum(per_1k.values()), 2),
    }


async def chain40(c: Client, automation_id: str, repeats: int = 5) -> dict[str, Any]:
    """Wall from StartRun to the terminal event of WatchRun, as this client sees it."""

    async def one() -> tuple[float, float]:
        started = time.time()
        run = await c.start(automation_id)
        async for item in c.ex.WatchRun(xpb.WatchRunRequest(run_id=run.id), timeout=60):
            if item.kind == "terminal":
                seen = time.time()
                assert item.run.status == epb.RUN_STATUS_SUCCEEDED, item.run.status
                return seen - started, _ts(item.run.finish_time) - started
        raise RuntimeError("WatchRun ended without a terminal event")

    await one()
    results = [await one() for _ in range(repeats)]
    walls = [r[0] for r in results]
    median = statistics.median(walls)
    return {
        "client_wall_s": round(median, 3),
        "client_wall_best_s": round(min(walls), 3),
        "server_wall_s": round(statistics.median(r[1] for r in results), 3),
        "overhead_per_step_ms": round((median - CHAIN_STEPS * 0.010) / CHAIN_STEPS * 1000, 2),
    }


async def definitions(c: Client, creates: int, seconds: float) -> dict[str, Any]:
    """Sequential CreateAutomation latency, then GetAutomation calls/s with IN_FLIGHT in flight."""
    plan = [{"id": "s", "action": "wait", "params": {"duration": "0s"}}]
    created, latencies = [], []
    for _ in range(creates):
        started = time.monotonic()
        created.append(await c.create(plan))
        latencies.append(time.monotonic() - started)
    gets: list[float] = []
    deadline = time.monotonic() + seconds
    ids = itertools.cycle(created)

    async def getter() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            await c.defs.GetAutomation(
                dpb.GetAutomationRequest(automation_id=next(ids)), timeout=30
            )
            gets.append(time.monotonic() - started)

    first = time.monotonic()
    await asyncio.gather(*(getter() for _ in range(IN_FLIGHT)))
    return {
        "creates": creates,
        "create_p50_ms": pct(latencies, 0.50),
        "create_p99_ms": pct(latencies, 0.99),
        "gets": len(gets),
        "gets_per_s": round(len(gets) / (time.monotonic() - first), 1),
        "get_p99_ms": pct(gets, 0.99),
    }


async def _runs_since(c: Client, since: float) -> list[Any]:
    """Every run of the workspace created at or after `since` (epoch seconds)."""
    after = Timestamp(seconds=int(since))
    out, token = [], ""
    while True:
        page = await c.ex.ListRuns(
            xpb.ListRunsRequest(created_after=after, page_size=500, page_token=token)
        )
        out += page.runs
        token = page.next_page_token
        if not token:
            return out


async def schedules(c: Client, n: int) -> dict[str, Any]:
    """n schedules due at the same minute boundary: lag to each step's start, misses, repeats."""
    plan = [{"id": "s", "action": "wait", "params": {"duration": "0s"}}]
    trigger = {"type": "schedule", "config": {"cron": "* * * * *", "timezone": "UTC"}}
    ids = set(await _limited([c.create(plan, [trigger]) for _ in range(n)]))
    boundary = (int(time.time()) // 60 + 1) * 60
    if boundary - time.time() < 20:  # the scheduler learns of them through definition events
        boundary += 60
    # The first look comes a little after the instant: ListRuns pages of a thousand runs
    # sent at the instant would put this client's own load on the executor in the very
    # window it measures.
    await asyncio.sleep(max(0.0, boundary + 2 - time.time()))
    deadline = boundary + 60
    due: list[Any] = []
    while time.time() < deadline:
        due = [
            r
            for r in await _runs_since(c, boundary - 30)
            if r.automation_id in ids and int(_ts(r.scheduled_for)) == boundary
        ]
        if len(due) >= n and all(r.status not in ACTIVE for r in due):
            break
        await asyncio.sleep(0.5)
    runs = await _limited([c.ex.GetRun(xpb.GetRunRequest(run_id=r.id)) for r in due])
    lags = [_ts(g.run.steps[0].start_time) - boundary for g in runs if g.run.steps]
    per_automation = Counter(r.automation_id for r in due)
    await _limited(
        [
            c.defs.DeleteAutomation(
                dpb.DeleteAutomationRequest(request_id=uuid.uuid4().hex, automation_id=a)
            )
            for a in ids
        ]
    )
    if time.time() > boundary + 55:  # a late delete may leave a fire of the next minute
        await asyncio.sleep(boundary + 65 - time.time())
    return {
        "schedules": n,
        "runs": len(due),
        "missed": len(ids - set(per_automation)),
        "duplicated": sum(k - 1 for k in per_automation.values() if k > 1),
        "steps_started": len(lags),
        "lag_to_step_start_p50_ms": pct(lags, 0.50),
        "lag_to_step_start_p99_ms": pct(lags, 0.99),
        "lag_to_step_start_max_ms": pct(lags, 1.0),
    }


async def run(conf: dict[str, Any]) -> dict[str, Any]:
    """Every phase, each on its own automations."""
    c = Client(conf)
    try:
        idle_rss = c.rss()
        scheduled = await schedules(c, conf.get("schedules", 1000))
        wait0 = [{"id": "s", "action": "wait", "params": {"duration": "0s"}}]
        steady, bursty = await c.create(wait0), await c.create(wait0)
        chain = await c.create(
            [
                {"id": f"s{i}", "action": "wait", "params": {"duration": "10ms"}}
                for i in range(CHAIN_STEPS)
            ]
        )
        for automation_id in (steady, bursty):
            await asyncio.gather(*(c.start(automation_id) for _ in range(20)))
        await c.drained(steady)
        await c.drained(bursty)
        return {
            "idle_rss_mb": idle_rss,
            "schedules": scheduled,
            "open_loop": await open_loop(c, steady, conf["rate"], conf["seconds"]),
            "burst": await burst(c, bursty, conf["burst"]),
            "chain40": await chain40(c, chain),
            "definitions": await definitions(c, conf.get("creates", 200), conf["seconds"]),
        }
    finally:
        for ch in c.channels:
            await ch.close()


def main() -> None:
    """Read the configuration on stdin, print one JSON object."""
    conf = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(run(conf))))


if __name__ == "__main__":
    main()
