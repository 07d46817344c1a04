"""The pooled engine against real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from autom.core.db import create_engine
from autom.devstack.eventually import assert_eventually


async def test_a_pooled_connection_whose_backend_died_is_replaced_at_checkout(
    database_url: str,
) -> None:
    engine = create_engine(url=database_url, application_name="core-db-test", pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            raw = (await conn.get_raw_connection()).driver_connection
        # The connection is back in the pool; its backend goes away as in a restart.
        killer = create_engine(url=database_url, application_name="core-db-killer")
        try:
            async with killer.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await killer.dispose()

        async def closed() -> None:
            assert raw.is_closed()

        await assert_eventually(closed)

        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()
