"""`autom-drafter [serve|migrate]`."""

from __future__ import annotations

import asyncio
import logging
import sys

from autom.core.grpcserver import serve
from autom.core.logging import configure_logging
from autom.drafter import db
from autom.drafter.app import build_app
from autom.drafter.settings import DrafterSettings

log = logging.getLogger("autom.drafter")


async def _serve(settings: DrafterSettings) -> None:
    if not settings.model:
        log.warning("AUTOM_DRAFTER_MODEL is not set: drafts will fail with not_configured")
    await serve(await build_app(settings))


def main() -> None:
    """Entry point: serve (default) or migrate."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    settings = DrafterSettings()
    configure_logging(settings.log_level, settings.log_format)
    if command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
    elif command == "serve":
        asyncio.run(_serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use serve or migrate")


if __name__ == "__main__":
    main()
