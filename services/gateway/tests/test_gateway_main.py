"""`python -m autom.gateway` serves from settings and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import httpx


async def test_main_serves_then_drains_on_sigterm() -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # No key of any kind: the gateway verifies and signs nothing.
        "AUTOM_HTTP_HOST": "127.0.0.1",
        "AUTOM_HTTP_PORT": "0",
        # Nothing listens there: health must say so quickly, and nothing else may break.
        "AUTOM_DEFINITIONS_ADDR": "127.0.0.1:1",
        "AUTOM_SCHEDULER_ADDR": "127.0.0.1:1",
        "AUTOM_EXECUTOR_ADDR": "127.0.0.1:1",
        "AUTOM_DRAFTER_ADDR": "127.0.0.1:1",
        "AUTOM_HEALTH_TIMEOUT_SECONDS": "0.5",
        "AUTOM_SHUTDOWN_GRACE_SECONDS": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autom.gateway",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await proc.stderr.readline()).decode()
                assert line, "gateway exited early:\n" + "".join(log)
                log.append(line)
                m = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    url = f"http://127.0.0.1:{m.group(1)}"
                    break
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            r = await client.get("/openapi.json")
            assert r.status_code == 200
            assert r.json()["openapi"] == "3.1.0"
            r = await client.get("/healthz")
            assert r.status_code == 503
            assert set(r.json()["services"].values()) == {"UNREACHABLE"}
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
        assert code == 0, "".join(log) + rest
        assert "Traceback" not in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
