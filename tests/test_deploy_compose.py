"""The compose stack and the image, checked offline: start order by health, migrations
retried, no password in the file, and an image that bakes in no checkout and runs as no root."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autom.devstack.ports import free_port

from .conftest import StartApp

GRPC_SERVICES = ("definitions", "scheduler", "executor", "drafter")


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((repo_root / "deploy/docker-compose.yaml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


def test_services_start_after_healthy_servers_and_finished_migrations(
    compose: dict[str, Any],
) -> None:
    for name in GRPC_SERVICES:
        assert compose[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "nats": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    assert compose["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert compose["gateway"]["depends_on"] == {
        name: {"condition": "service_healthy"} for name in GRPC_SERVICES
    }
    for name, service in compose.items():
        if name != "migrate":
            assert service["healthcheck"]["test"], name
    # The gRPC services report their own readiness (gRPC health "") on AUTOM_GRPC_PORT.
    for name in GRPC_SERVICES:
        assert compose[name]["healthcheck"]["test"] == [
            "CMD", "python", "-m", "autom.core.healthcheck",
        ]  # fmt: skip


def test_migrations_are_retried_until_the_database_answers(compose: dict[str, Any]) -> None:
    script = " ".join(compose["migrate"]["command"])
    assert "until autom-$$s migrate" in script
    assert "for s in definitions scheduler executor drafter" in script


def test_no_password_is_written_in_compose_and_env_example_names_every_required_one(
    repo_root: Path,
) -> None:
    text = (repo_root / "deploy/docker-compose.yaml").read_text()
    # Every credential comes from the environment (deploy/.env), never a literal.
    for line in text.splitlines():
        if re.search(r"PASSWORD|SECRET|_KEY|DATABASE_URL", line) and ":" in line:
            value = line.split(":", 1)[1]
            if value.strip() and not value.strip().startswith(("{", "[")):
                assert "${" in value or "condition" in value, line
    assert "autom:autom@" not in text
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert {
        "POSTGRES_PASSWORD",
        "AUTOM_AUTH_PRIVATE_KEY",
        "AUTOM_AUTH_PUBLIC_KEYS",
        "AUTOM_SECRETS_KEY",
        "AUTOM_PAGE_TOKEN_KEY",
    } <= required
    example = (repo_root / "deploy/.env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and
              not line.startswith("#")}  # fmt: skip
    assert required <= listed
    assert all(line.endswith("=") for line in example.splitlines() if "=" in line and
               not line.startswith("#")), "the example holds no value"  # fmt: skip


def test_the_image_is_multi_stage_non_root_and_ignores_the_checkout(repo_root: Path) -> None:
    ignored = (repo_root / ".dockerignore").read_text().split()
    assert {".venv", ".autom", ".git"} <= set(ignored)
    dockerfile = (repo_root / "deploy/Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines() if not line.startswith("#")]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2, stages
    final = lines[lines.index(stages[-1]) :]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert "COPY . ." not in dockerfile
    # The runtime stage takes the built environment, not the sources.
    assert any(line.startswith("COPY --from=build /app/.venv") for line in final)


async def test_the_container_healthcheck_reports_serving_and_down(start_app: StartApp) -> None:
    definitions = await start_app("definitions")

    async def probe(address: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autom.core.healthcheck", address
        )
        return await asyncio.wait_for(proc.wait(), timeout=30)

    assert await probe(definitions.address) == 0
    assert await probe(f"127.0.0.1:{free_port()}") == 1
