"""Fixtures for cross-service tests: the real services in-process over real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp
from autom.devstack.testing import service_keys

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
    from autom.devstack.nats import service_nats_url

    started: list[GrpcApp] = []

    async def start(service: str, **overrides: Any) -> GrpcApp:
        import importlib

        app_module = importlib.import_module(f"autom.{service}.app")
        settings_module = importlib.import_module(f"autom.{service}.settings")
        settings_cls = next(
            getattr(settings_module, name)
            for name in dir(settings_module)
            if name.endswith("Settings") and name != "ServiceSettings"
        )
        overrides.setdefault("nats_url", service_nats_url(nats_url, service))
        fields = {
            "database_url": database_url,
            "grpc_port": 0,
            **service_keys(service, signing_key),
            **overrides,
        }
        settings = settings_cls(**fields)
        app: GrpcApp = await app_module.build_app(settings)
        await app.start()
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        if app.bound_port:
            await app.stop()
