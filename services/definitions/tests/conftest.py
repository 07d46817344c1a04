"""Fixtures: the definitions service in-process on a real database, NATS and gRPC channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp
from autom.definitions.app import build_app
from autom.definitions.settings import DefinitionsSettings
from autom.devstack.testing import service_keys


@pytest.fixture
async def definitions_app(
    database_url: str, nats_url: str, signing_key: str
) -> AsyncIterator[GrpcApp]:
    """A started definitions server on an ephemeral port."""
    settings = DefinitionsSettings(
        database_url=database_url,
        nats_url=nats_url,
        grpc_port=0,
        **service_keys("definitions", signing_key),
    )
    app = await build_app(settings)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
def signer(signing_key: str) -> TokenSigner:
    """Mints tokens the in-process services accept."""
    return TokenSigner(signing_key)


@pytest.fixture
def token_for(signer: TokenSigner) -> Any:
    """token_for(role, workspace='default', subject='user:alice') -> bearer token."""

    def make(role: Role, workspace: str = "default", subject: str = "user:alice") -> str:
        return signer.issue(subject=subject, workspace_id=workspace, role=role)[0]

    return make


@pytest.fixture
def digest() -> dict[str, Any]:
    """A realistic definition (DESIGN §3) in its JSON form (fresh per test)."""
    return {
        "name": "weekly-issue-digest",
        "description": "Summarise open issues every Monday",
        "goal": "Keep the team aware of open issues",
        "triggers": [
            {
                "type": "schedule",
                "config": {
                    "cron": "0 9 * * 1",
                    "timezone": "Europe/Zurich",
                    "catchup": "latest",
                    "catchup_window": "1h",
                    "jitter": "0s",
                },
                "inputs": {"repo": "octo/widgets"},
            }
        ],
        "inputs": {
            "schema": {
                "type": "object",
                "required": ["repo"],
                "properties": {"repo": {"type": "string"}},
            }
        },
        "plan": [
            {
                "id": "fetch",
                "action": "http_request",
                "params": {
                    "method": "GET",
                    "url": "https://api.example.com/repos/{{ inputs.repo }}/issues",
                },
            },
            {
                "id": "summarise",
                "action": "agent_task",
                "when": "{{ steps.fetch.output.status == 200 }}",
                "params": {
                    "prompt": "Summarise: {{ steps.fetch.output.json | tojson }}",
                    "model": "openai/gpt-4o-mini",
                    "temperature": 0.2,
                },
                "retry": {"max_retries": 2},
            },
            {
                "id": "post",
                "action": "http_request",
                "params": {
                    "method": "POST",
                    "url": "{{ secrets.WEBHOOK_URL }}",
                    "json": {"text": "{{ steps.summarise.output.text }}"},
                },
            },
        ],
        "execution": {
            "timeout": "15m",
            "step_timeout": "5m",
            "retry": {
                "max_retries": 1,
                "backoff": "exponential",
                "initial_delay": "1s",
                "max_delay": "1m",
                "jitter": True,
            },
            "concurrency": "skip",
            "budget_usd": 0.5,
            "on_failure": [
                {
                    "id": "alert",
                    "action": "log",
                    "params": {"message": "digest failed", "level": "error"},
                }
            ],
        },
        "metadata": {"tags": ["reporting"], "extras": {"owner_team": "platform"}},
    }
