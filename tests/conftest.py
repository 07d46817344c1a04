"""Fixtures for cross-service tests: the real services in-process over real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp
from autom.devstack.testing import start_service

StartApp = Callable[..., Awaitable[GrpcApp]]


@pytest.fixture
def signer(signing_key: str) -> TokenSigner:
    """Mints tokens the in-process services accept."""
    return TokenSigner(signing_key)


@pytest.fixture
def owner_token(signer: TokenSigner) -> str:
    """An owner of the `default` workspace."""
    return signer.issue(subject="user:owner", workspace_id="default", role=Role.OWNER)[0]


@pytest.fixture
async def start_app(database_url: str, nats_url: str, signing_key: str) -> AsyncIterator[StartApp]:
    """start_app('definitions', **settings) builds and starts a service; all stop at teardown.

    Each service connects to NATS as its own user, with the permissions it has deployed.
    """
    started: list[GrpcApp] = []

    async def start(service: str, **overrides: Any) -> GrpcApp:
        app = await start_service(service, database_url, nats_url, signing_key, **overrides)
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        if app.bound_port:
            await app.stop()
