"""A live gateway over the module's real services (the root conftest's `service_stack`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from autom.core.auth import Role, TokenSigner
from autom.devstack.asgi import serve_asgi
from autom.devstack.testing import TEST_SIGNING_KEY
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings


@dataclass
class Stack:
    """The running services and gateway of a test module."""

    url: str
    services: Any  # the root conftest's ServiceStack
    signer: TokenSigner
    gateway: Gateway
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, role: Role = Role.OWNER, workspace: str = "ws-1") -> str:
        """A signed bearer token (cached per role and workspace)."""
        key = f"{role.value}:{workspace}"
        if key not in self.tokens:
            self.tokens[key], _, _ = self.signer.issue(
                subject=f"user:{role.value}", workspace_id=workspace, role=role
            )
        return self.tokens[key]

    def headers(self, role: Role = Role.OWNER, workspace: str = "ws-1") -> dict[str, str]:
        """Authorization header for a token."""
        return {"Authorization": f"Bearer {self.token(role, workspace)}"}

    def spawn(self, **overrides: Any) -> contextlib.AbstractAsyncContextManager[str]:
        """Another live gateway over the same services, with settings overridden; yields its URL."""
        return serve_asgi(Gateway(gateway_settings(self.services.addresses, **overrides)))


def gateway_settings(addresses: dict[str, str], **overrides: Any) -> GatewaySettings:
    """Settings pointing at the services' addresses."""
    values: dict[str, Any] = {
        **{f"{service}_addr": address for service, address in addresses.items()},
        "shutdown_grace_seconds": 1.0,
        **overrides,
    }
    return GatewaySettings(**values)


@pytest.fixture(scope="module")
async def stack(service_stack: Any) -> AsyncIterator[Stack]:
    """The real definitions/scheduler/executor/drafter and a live gateway in front of them."""
    gateway = Gateway(gateway_settings(service_stack.addresses))
    async with serve_asgi(gateway) as url:
        yield Stack(
            url=url, services=service_stack, signer=TokenSigner(TEST_SIGNING_KEY), gateway=gateway
        )


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the live gateway (no proxies from the environment)."""
    async with httpx.AsyncClient(base_url=stack.url, trust_env=False, timeout=10) as c:
        yield c
