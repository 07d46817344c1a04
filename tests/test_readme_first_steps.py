"""The README's "First steps" block, run as written against the stack `make run` starts."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autom.devstack.ports import free_port
from autom.drafter.testing import ScriptedLLM

TOKEN_LINE = re.compile(r"export AUTOM_TOKEN=(\S+)")

DRAFTED = {
    "name": "monday-reminder",
    "triggers": [
        {"type": "schedule", "config": {"cron": "0 9 * * 1", "timezone": "Europe/Zurich"}}
    ],
    "plan": [
        {
            "id": "post",
            "action": "http_request",
            "params": {
                "method": "POST",
                "url": "https://example.com/hook",
                "json": {"text": "reminder"},
            },
        }
    ],
}


def first_steps_block(readme: str) -> str:
    """The first bash block under the "## First steps" heading."""
    section = readme.split("\n## First steps\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "README's First steps has no bash block"
    return match.group(1)


async def _read_until_token(proc: asyncio.subprocess.Process, seen: list[str]) -> str:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        text = line.decode(errors="replace")
        seen.append(text)
        if found := TOKEN_LINE.search(text):
            return found.group(1)
    raise AssertionError("make run exited before printing a token:\n" + "".join(seen))


# Starts the whole stack as `make run` does (imports of five services on two cores).
@pytest.mark.timeout(600)
async def test_readme_first_steps_run_as_written(
    repo_root: Path, database_url: str, tmp_path: Path
) -> None:
    script = first_steps_block((repo_root / "README.md").read_text())
    # free_port never repeats a port within a process, so these are distinct.
    names = ("definitions", "scheduler", "executor", "drafter", "http", "nats")
    ports = {name: free_port() for name in names}
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTOM_")}
    async with ScriptedLLM() as llm:
        llm.reply({"definition": DRAFTED})
        stack_env = {
            **base,
            "AUTOM_HOME": str(tmp_path / "home"),
            "AUTOM_DATABASE_URL": database_url,
            "AUTOM_DRAFTER_MODEL": "openai/gpt-4o-mini",
            "AUTOM_DRAFTER_API_BASE": llm.url,
            "AUTOM_DRAFTER_API_KEY": "test",
            **{f"AUTOM_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
        # `make run` is `python -m autom.devstack.run` once the environment is set up.
        stack = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autom.devstack.run",
            cwd=repo_root,
            env=stack_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        seen: list[str] = []
        try:
            token = await asyncio.wait_for(_read_until_token(stack, seen), timeout=240)
            drain = asyncio.create_task(_read_until_token(stack, seen))
            env = {
                **base,
                # The other terminal: same checkout, the CLI told where the stack listens.
                **{
                    f"AUTOM_{name.upper()}_ADDR": f"127.0.0.1:{ports[name]}"
                    for name in ("definitions", "scheduler", "executor", "drafter")
                },
                "AUTOM_CONFIG": str(tmp_path / "cli.json"),
                "MY_API_KEY": "k-123",
                "NO_COLOR": "1",
                "COLUMNS": "200",
            }
            shell = await asyncio.create_subprocess_exec(
                "bash",
                "-euo",
                "pipefail",
                "-c",
                script.replace("<printed token>", token),
                cwd=repo_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(shell.communicate(), timeout=180)
            output = out.decode(errors="replace")
            assert shell.returncode == 0, output + "\n--- make run ---\n" + "".join(seen)
            assert "Run succeeded" in output, output
            assert "heartbeat" in output and "monday-reminder" in output, output
            assert "k-123" not in output  # a secret's value is never echoed
        finally:
            if stack.returncode is None:
                stack.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(stack.wait(), timeout=60)
                except TimeoutError:
                    stack.kill()
                    await stack.wait()
        drain.cancel()
