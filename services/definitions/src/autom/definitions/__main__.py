"""`autom-definitions [serve|migrate|dev-token]`."""

from __future__ import annotations

import asyncio
import sys

from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import serve
from autom.core.logging import configure_logging
from autom.core.registry import build_catalog
from autom.definitions import db
from autom.definitions.app import build_app
from autom.definitions.service import DefinitionsService
from autom.definitions.settings import DefinitionsSettings


async def _dev_token(settings: DefinitionsSettings) -> str:
    engine = create_engine(url=settings.database_url, application_name="autom-definitions-cli")
    try:
        service = DefinitionsService(engine, build_catalog(plugins=False), None)
        return await service.bootstrap_dev(TokenSigner(settings.auth_secret.get_secret_value()))
    finally:
        await engine.dispose()


async def _serve(settings: DefinitionsSettings) -> None:
    await serve(await build_app(settings))


def main() -> None:
    """Entry point: serve (default), migrate, or mint a dev owner token."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    settings = DefinitionsSettings()
    configure_logging(settings.log_level, settings.log_format)
    if command == "migrate":
        asyncio.run(db.migrate(settings.database_url))
    elif command == "dev-token":
        print(asyncio.run(_dev_token(settings)))
    elif command == "serve":
        asyncio.run(_serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use serve, migrate or dev-token")


if __name__ == "__main__":
    main()
