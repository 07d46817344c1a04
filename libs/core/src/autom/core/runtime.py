"""What every service connects to at start: PostgreSQL, NATS JetStream, the token signer."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import Background
from autom.core.revocations import revocation_feed
from autom.core.settings import ServiceSettings


@dataclass
class Runtime:
    """Connections of one service process; `close()` drains NATS then disposes the pool."""

    name: str
    engine: AsyncEngine
    nc: NATS
    js: JetStreamContext
    signer: TokenSigner

    def background(self) -> list[Background]:
        """Loops every service runs: the token revocation feed."""
        return [revocation_feed(self.js, self.signer.revocations).run]

    async def close(self) -> None:
        """Drain in-flight NATS work, then close database connections."""
        if not self.nc.is_closed:
            await self.nc.drain()
        await self.engine.dispose()


async def open_runtime(settings: ServiceSettings, *, name: str) -> Runtime:
    """Connect to PostgreSQL and NATS, declare the streams and build the signer."""
    engine = create_engine(
        url=settings.database_url, application_name=f"autom-{name}", pool_size=settings.db_pool_size
    )
    nc = await bus.connect(settings.nats_url, name=f"autom-{name}")
    js = nc.jetstream()
    await bus.ensure_streams(js, replicas=settings.nats_stream_replicas)
    return Runtime(
        name=name,
        engine=engine,
        nc=nc,
        js=js,
        signer=TokenSigner(settings.auth_secret.get_secret_value()),
    )
