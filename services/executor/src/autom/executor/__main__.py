"""`autom-executor [serve|migrate]`."""

from __future__ import annotations

import asyncio
import sys

from autom.core.grpcserver import serve
from autom.core.logging import configure_logging
from autom.executor import db
from autom.executor.app import build_app
from autom.executor.settings import ExecutorSettings


async def _serve(settings: ExecutorSettings) -> None:
    await serve(await build_app(settings))


def main() -> None:
    """Entry point: serve (default) or migrate."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    settings = ExecutorSettings()
    configure_logging(settings.log_level, settings.log_format)
    if command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
    elif command == "serve":
        asyncio.run(_serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use serve or migrate")


if __name__ == "__main__":
    main()
