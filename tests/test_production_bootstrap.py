"""What an operator runs first: `--help` without any settings, then the bootstrap command
that makes the first workspace and owner token in a real database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.core.grpcserver import channel

from .conftest import StartApp

SERVICES = ("definitions", "scheduler", "executor", "drafter", "gateway")
BIN = Path(sys.executable).parent


def _bare_env() -> dict[str, str]:
    """The environment without a single AUTOM_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOM_")}


async def _run(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_every_service_command_answers_help_without_settings() -> None:
    results = await asyncio.gather(
        *(_run(str(BIN / f"autom-{name}"), "--help", env=_bare_env()) for name in SERVICES)
    )
    for name, (code, out, err) in zip(SERVICES, results, strict=True):
        assert code == 0, (name, out, err)
        assert out.startswith(f"usage: autom-{name}"), (name, out)
        assert "Traceback" not in err, (name, err)
    definitions_help = results[0][1]
    assert "bootstrap" in definitions_help and "migrate" in definitions_help


async def test_missing_settings_name_the_variable_without_a_traceback() -> None:
    # definitions imports per command, so this costs an interpreter start and little more.
    # (migrate needs only the database URL, which has a default: admin-token needs the key.)
    code, _, err = await _run(str(BIN / "autom-definitions"), "admin-token", env=_bare_env())
    assert code == 2
    assert "AUTOM_AUTH_PRIVATE_KEY" in err
    assert "Traceback" not in err


async def test_bootstrap_makes_the_first_workspace_and_an_owner_token(
    start_app: StartApp, database_url: str, signing_key: str
) -> None:
    env = {
        **_bare_env(),
        "AUTOM_DATABASE_URL": database_url,
        "AUTOM_AUTH_PRIVATE_KEY": signing_key,
        "AUTOM_LOG_LEVEL": "WARNING",
    }
    argv = (sys.executable, "-m", "autom.definitions", "bootstrap")
    owner = ("--workspace", "acme", "--owner", "user:alice")
    first, again, refused = await asyncio.gather(
        _run(*argv, *owner, env=env),
        _run(*argv, *owner, "--ttl-days", "7", env=env),
        _run(*argv, "--workspace", "acme", env=env),
    )
    assert first[0] == 0 and again[0] == 0, (first, again)
    assert refused[0] == 2 and "--owner" in refused[2]
    tokens = [first[1].strip().splitlines()[-1], again[1].strip().splitlines()[-1]]
    assert tokens[0] != tokens[1]

    definitions = await start_app("definitions")
    workspaces = set()
    for token in tokens:
        stub = dpb_grpc.DefinitionsServiceStub(channel(definitions.address, token))
        who = await stub.WhoAmI(dpb.WhoAmIRequest())
        assert who.principal == "user:alice"
        assert who.role == definitions_pb2.ROLE_OWNER
        workspaces.add(who.workspace_id)
        members = await stub.ListMembers(dpb.ListMembersRequest())
        assert [(m.principal, m.role) for m in members.members] == [
            ("user:alice", definitions_pb2.ROLE_OWNER)
        ]
    assert len(workspaces) == 1  # run twice: one workspace, two tokens
