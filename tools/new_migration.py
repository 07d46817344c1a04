"""Autogenerate a static Alembic migration for one service against a scratch database.

Usage: python tools/new_migration.py <service> "<message>"   (needs AUTOM_DATABASE_URL pointing
at a PostgreSQL server database where a scratch database may be created).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from autom.core.db import asyncpg_url


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    service, message = sys.argv[1], sys.argv[2]
    server = os.environ.get("AUTOM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    module = importlib.import_module(f"autom.{service}.db")
    scratch = f"autom_gen_{uuid.uuid4().hex[:8]}"
    base = server.rsplit("/", 1)[0]
    asyncio.run(_admin(server, f'CREATE DATABASE "{scratch}"'))
    try:
        url = f"{base}/{scratch}"
        script_location = Path(module.__file__).parent / "migrations"
        (script_location / "versions").mkdir(exist_ok=True)
        asyncio.run(module.migrate(url))
        cfg = Config()
        cfg.set_main_option("script_location", str(script_location))
        cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
        cfg.attributes["database_url"] = asyncpg_url(url)
        cfg.attributes["schema"] = module.SCHEMA
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M")
        command.revision(cfg, message=message, autogenerate=True, rev_id=f"{stamp}_{service}")
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
