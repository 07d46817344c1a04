"""Through the front door: the `make run` stack driven by a client in its own process.

Starts `python -m autom.devstack.run` (embedded PostgreSQL with fsync on, nats-server with
JetStream `sync_interval: always`, every service as its own process) in a temporary
AUTOM_HOME, then runs `python -m bench.api_client` against its public gRPC API with the dev
token. Prints one JSON object: the client's figures (open-loop StartRun, fire -> terminal
throughput, CPU seconds per 1,000 runs by process, chain40 as WatchRun shows it) and the
durability settings the stack ran under, read from the servers themselves.

AUTOM_BENCH_API_RATE (StartRun/s, default 500) and AUTOM_BENCH_API_SECONDS (default 4) size
the open-loop phase (and the GetAutomation phase); AUTOM_BENCH_API_BURST (default 2000) the
throughput burst; AUTOM_BENCH_API_CREATES (default 200) the sequential CreateAutomation calls;
AUTOM_BENCH_API_SCHEDULES (default 1000, the default active-automation quota) the schedules
due in the same minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

READY_LINE = "Autom is running"
SERVICES = ("definitions", "scheduler", "executor")
START_TIMEOUT_S = 300.0


def _ports() -> dict[str, int]:
    from autom.devstack.ports import free_port

    names = ("pg", "nats", "definitions", "scheduler", "executor", "drafter", "http")
    return {name: free_port() for name in names}


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _pids(root: int, home: str) -> dict[str, int]:
    """The top process of each service, PostgreSQL and nats-server under the devstack."""
    out: dict[str, int] = {}
    for pid in _descendants(root):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
            line = " ".join(argv)
            for service in SERVICES:
                if argv[-2:] == ["-m", f"autom.{service}"] or line.endswith(f"-m autom.{service} "):
                    out[service] = pid
            if "nats-server" in argv[0]:
                out["nats"] = pid
            if argv[0].endswith("/postgres") and f"{home}/postgres" in line:
                out["postgres"] = pid
    return out


def _read_until_ready(proc: subprocess.Popen[str], tail: list[str]) -> bool:
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in proc.stdout:
        tail.append(line.rstrip())
        del tail[:-40]
        if READY_LINE in line:
            return True
        if time.monotonic() > deadline:
            return False
    return False


async def _postgres_durability(url: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


def durability(home: Path, pg_port: int) -> dict[str, Any]:
    """fsync settings as the servers report them (PostgreSQL) or were configured (NATS)."""
    conf = home / "nats" / "nats-server.conf"
    sync = "2m (nats-server default: acks before fsync)"
    if conf.exists():
        for raw in conf.read_text().splitlines():
            if raw.strip().startswith("sync_interval:"):
                sync = raw.split(":", 1)[1].strip()
    pg = asyncio.run(_postgres_durability(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"))
    return {"nats_sync_interval": sync, "postgres": pg}


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def main() -> None:
    """Start the stack, run the client, print one JSON object."""
    ports = _ports()
    with tempfile.TemporaryDirectory(prefix="autom-bench-api-") as tmp:
        home = Path(tmp) / "home"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTOM_")},
            "AUTOM_HOME": str(home),
            "AUTOM_LOG_LEVEL": os.environ.get("AUTOM_LOG_LEVEL", "WARNING"),
            **{f"AUTOM_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "autom.devstack.run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        tail: list[str] = []
        try:
            if not _read_until_ready(proc, tail):
                raise SystemExit("the stack did not start:\n" + "\n".join(tail))
            # Keep draining its output so the services never block on a full pipe.
            assert proc.stdout is not None
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            conf = {
                "token": (home / "dev-token").read_text().strip(),
                "addrs": {s: f"127.0.0.1:{ports[s]}" for s in SERVICES},
                "pids": _pids(proc.pid, str(home)),
                "rate": float(os.environ.get("AUTOM_BENCH_API_RATE", "500")),
                "seconds": float(os.environ.get("AUTOM_BENCH_API_SECONDS", "4")),
                "burst": int(os.environ.get("AUTOM_BENCH_API_BURST", "2000")),
                "creates": int(os.environ.get("AUTOM_BENCH_API_CREATES", "200")),
                "schedules": int(os.environ.get("AUTOM_BENCH_API_SCHEDULES", "1000")),
            }
            client = subprocess.run(
                [sys.executable, "-m", "bench.api_client"],
                input=json.dumps(conf),
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            lines = [line for line in client.stdout.splitlines() if line.strip()]
            if client.returncode != 0 or not lines:
                raise SystemExit(f"client failed:\n{client.stderr[-3000:]}")
            result = json.loads(lines[-1])
            result["durability"] = durability(home, ports["pg"])
            result["stack"] = "make run (autom.devstack.run), client in its own process"
            print(json.dumps(result))
        finally:
            _stop(proc)


if __name__ == "__main__":
    main()
