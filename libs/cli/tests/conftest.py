"""A runner for the `autom` CLI against the module's real services, one workspace per test."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from autom.cli.app import app
from autom.core.auth import Role, TokenSigner

Cli = Callable[..., Awaitable[Result]]
Token = Callable[..., str]


@pytest.fixture
def workspace(request: pytest.FixtureRequest) -> str:
    """The test's own workspace on the shared stack: no other test sees its data."""
    return "ws-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50]


@pytest.fixture
def token(signing_key: str, workspace: str) -> Token:
    """token(role) mints a token of the test's workspace the services accept."""
    signer = TokenSigner(signing_key)

    def issue(role: Role = Role.OWNER) -> str:
        return signer.issue(subject=f"user:{role.value}", workspace_id=workspace, role=role)[0]

    return issue


@pytest.fixture
def cli(service_stack: Any, token: Token, tmp_path: Path) -> Cli:
    """Run `autom <args>` (in a worker thread: the services need this loop)."""
    runner = CliRunner()
    base_env = {
        "AUTOM_TOKEN": token(),
        "AUTOM_CONFIG": str(tmp_path / "config.json"),
        "COLUMNS": "160",
        "NO_COLOR": "1",
        **{f"AUTOM_{s.upper()}_ADDR": a for s, a in service_stack.addresses.items()},
    }

    async def run(
        *args: str, env: dict[str, str | None] | None = None, input: str | None = None
    ) -> Result:
        merged = {**base_env, **(env or {})}
        return await asyncio.to_thread(
            runner.invoke, app, list(args), env=merged, input=input, catch_exceptions=False
        )

    return run
