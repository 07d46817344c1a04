"""Async engine and sessions, and an Alembic runner that upgrades one service's schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """MetaData bound to one service's schema with a stable naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to the asyncpg dialect."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


def create_engine(
    *, url: str, application_name: str, pool_size: int = 10, echo: bool = False
) -> AsyncEngine:
    """An asyncpg engine whose connections name the service in pg_stat_activity.

    At most `2 * pool_size` connections, all kept: overflow connections would be closed on
    return, so a burst above `pool_size` paid a new backend and a TLS probe per transaction.
    A pooled connection is checked for life at checkout without a round trip (`_alive`).
    """
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=2 * pool_size,
        max_overflow=0,
        echo=echo,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    event.listen(engine.sync_engine, "checkout", _alive)
    return engine


def _alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Refuse a pooled connection whose socket is gone, so the pool opens a fresh one.

    A restarted PostgreSQL closes every backend's socket and the event loop sees it at once.
    This replaces `pool_pre_ping`, which cost BEGIN, a ping and ROLLBACK on every checkout;
    a connection that dies unnoticed fails its statement, and SQLAlchemy then invalidates the
    whole pool (the callers' retries find fresh connections).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the connection was closed by the server")


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit, for reads whose statements need no shared snapshot
    (one statement, or rows that never change): no BEGIN and ROLLBACK round trips."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(url: str, schema: str, script_location: Path, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["database_url"] = asyncpg_url(url)
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, revision)


async def migrate(*, url: str, schema: str, script_location: Path, revision: str = "head") -> None:
    """Upgrade one service's schema; Alembic is synchronous, so it runs in a thread."""
    await asyncio.to_thread(_upgrade, url, schema, script_location, revision)


def run_alembic_env(target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py: online, async, in the service's schema.

    Serialised with an advisory lock so replicas starting together migrate once.
    """
    from alembic import context

    config = context.config
    url: str = config.attributes["database_url"]
    schema: str = config.attributes["schema"]

    def run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:s))"), {"s": schema})
                try:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    await conn.commit()
                    await conn.run_sync(run)
                    await conn.commit()
                finally:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:s))"), {"s": schema}
                    )
                    await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())
