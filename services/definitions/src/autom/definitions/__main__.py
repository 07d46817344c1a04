"""`autom-definitions [serve|migrate|dev-token|admin-token|rotate-secrets]`."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import TYPE_CHECKING

from autom.core.errors import AutomError
from autom.core.logging import configure_logging
from autom.core.runtime import build_signer, run_loop
from autom.definitions.settings import DefinitionsSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

COMMANDS = ("serve", "migrate", "dev-token", "admin-token", "rotate-secrets")
# A deployment-admin token cannot be revoked through the API, so it lives at most a day.
MAX_ADMIN_TTL = 24 * 3600
_ADMIN_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,200}$")


async def _dev_token(settings: DefinitionsSettings) -> str:
    from autom.core.db import create_engine
    from autom.core.registry import build_catalog
    from autom.definitions.service import DefinitionsService

    engine = create_engine(url=settings.database_url, application_name="autom-definitions-cli")
    try:
        service = DefinitionsService(engine, build_catalog(plugins=False), None)
        return await service.bootstrap_dev(build_signer(settings))
    finally:
        await engine.dispose()


def _admin_token(settings: DefinitionsSettings, argv: Sequence[str]) -> str:
    parser = argparse.ArgumentParser(prog="autom-definitions admin-token")
    parser.add_argument("--name", default="operator", help="who holds it (subject admin:NAME)")
    parser.add_argument("--ttl", type=int, default=3600, help=f"seconds, 1..{MAX_ADMIN_TTL}")
    args = parser.parse_args(argv)
    if not 1 <= args.ttl <= MAX_ADMIN_TTL:
        parser.error(f"--ttl must be between 1 and {MAX_ADMIN_TTL}")
    if not _ADMIN_NAME.match(args.name):
        parser.error("--name may hold letters, digits and @._-")
    return build_signer(settings).admin_token(args.name, ttl_seconds=args.ttl)


async def _rotate_secrets(settings: DefinitionsSettings) -> int:
    from autom.core.db import create_engine
    from autom.definitions.access import AccessService, build_cipher

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    engine = create_engine(url=settings.database_url, application_name="autom-definitions-cli")
    try:
        signer = build_signer(settings)
        return await AccessService(engine, signer, build_cipher(key), None).rotate_secrets()
    finally:
        await engine.dispose()


async def _serve(settings: DefinitionsSettings) -> None:
    from autom.core.grpcserver import serve
    from autom.definitions.app import build_app

    await serve(await build_app(settings))


def main() -> None:
    """Entry point: serve (default), migrate, mint a dev or admin token, or rotate secrets."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    settings = DefinitionsSettings()
    configure_logging(settings.log_level, settings.log_format)
    # Imports per command: minting a token must not load the server (and stays quick).
    if command == "migrate":
        from autom.definitions import db

        asyncio.run(db.migrate(settings.database_url))
    elif command == "dev-token":
        print(asyncio.run(_dev_token(settings)))
    elif command == "admin-token":
        print(_admin_token(settings, sys.argv[2:]))
    elif command == "rotate-secrets":
        # AUTOM_SECRETS_KEY=new,old: every ciphertext moves to `new`; then `old` may go.
        try:
            count = asyncio.run(_rotate_secrets(settings))
        except AutomError as exc:
            sys.exit(f"rotate-secrets: {exc.message} (nothing was changed)")
        print(f"re-encrypted {count} secrets with the newest key")
    elif command == "serve":
        run_loop(_serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use {', '.join(COMMANDS)}")


if __name__ == "__main__":
    main()
