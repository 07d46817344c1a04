"""`autom-definitions [serve|migrate|dev-token]`."""

from __future__ import annotations

from autom.core.db import create_engine
from autom.core.registry import build_catalog
from autom.core.runtime import build_signer, run_service
from autom.definitions import db
from autom.definitions.app import build_app
from autom.definitions.service import DefinitionsService
from autom.definitions.settings import DefinitionsSettings


async def _dev_token(settings: DefinitionsSettings) -> str:
    engine = create_engine(url=settings.database_url, application_name="autom-definitions-cli")
    try:
        service = DefinitionsService(engine, build_catalog(plugins=False), None)
        return await service.bootstrap_dev(build_signer(settings))
    finally:
        await engine.dispose()


def main() -> None:
    """Entry point: serve (default), migrate, or mint a dev owner token."""
    run_service(
        DefinitionsSettings, build_app, migrate=db.migrate, commands={"dev-token": _dev_token}
    )


if __name__ == "__main__":
    main()
