"""`autom-definitions [serve|migrate|bootstrap|dev-token|admin-token|rotate-secrets|...]`.

Key commands: `generate-signing-key` and `service-credential SERVICE` need no settings (a
new deployment's first keys); `rotate-signing-key` prints the settings of the next key.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import TYPE_CHECKING

from autom.core.errors import AutomError
from autom.core.logging import configure_logging
from autom.core.runtime import HELP_FLAGS, load_settings, run_loop, usage
from autom.definitions.settings import DefinitionsSettings, build_signer

if TYPE_CHECKING:
    from collections.abc import Sequence

COMMANDS = {
    "serve": "serve gRPC until SIGTERM (the default)",
    "migrate": "upgrade the definitions schema to the newest revision (safe to re-run)",
    "bootstrap": "create a workspace with an owner and print an owner token "
    "(--workspace NAME --owner PRINCIPAL [--ttl-days N]); the production first step",
    "admin-token": "print a deployment-admin token (--name NAME --ttl SECONDS, at most a day)",
    "rotate-secrets": "re-encrypt every secret with the newest AUTOM_SECRETS_KEY",
    "rotate-signing-key": "print the settings that roll the token-signing key over",
    "generate-signing-key": "print a new signing key pair (needs no settings)",
    "service-credential": "print a new credential for SERVICE (scheduler, executor; "
    "needs no settings)",
    "dev-token": "print an owner token of the `default` workspace (make run only)",
}
# A deployment-admin token cannot be revoked through the API, so it lives at most a day.
MAX_ADMIN_TTL = 24 * 3600
_ADMIN_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,200}$")
_PRINCIPAL = re.compile(r"^user:[A-Za-z0-9@._-]{1,200}$")
MAX_BOOTSTRAP_TTL_DAYS = 365


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


def _bootstrap_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="autom-definitions bootstrap")
    parser.add_argument("--workspace", required=True, help="workspace name (created if missing)")
    parser.add_argument("--owner", required=True, help="the owner's principal, e.g. user:alice")
    parser.add_argument("--ttl-days", type=int, default=30, help="token lifetime in days (30)")
    args = parser.parse_args(argv)
    if not 1 <= args.ttl_days <= MAX_BOOTSTRAP_TTL_DAYS:
        parser.error(f"--ttl-days must be between 1 and {MAX_BOOTSTRAP_TTL_DAYS}")
    if not _PRINCIPAL.match(args.owner):
        parser.error("--owner must look like user:NAME (letters, digits and @._-)")
    return args


async def _bootstrap(settings: DefinitionsSettings, args: argparse.Namespace) -> str:
    from autom.core.db import create_engine
    from autom.definitions.access import AccessService, build_cipher

    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    engine = create_engine(url=settings.database_url, application_name="autom-definitions-cli")
    try:
        access = AccessService(engine, build_signer(settings), build_cipher(key), None)
        workspace_id, token = await access.bootstrap_owner(
            args.workspace, args.owner, ttl_seconds=args.ttl_days * 86400
        )
    finally:
        await engine.dispose()
    print(f"workspace {args.workspace} ({workspace_id}): owner {args.owner}", file=sys.stderr)
    return token


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


def _generate_signing_key() -> str:
    from autom.core.auth import generate_private_key, private_key_text, public_key_text

    key = generate_private_key()
    return (
        "# the definitions service only:\n"
        f"AUTOM_AUTH_PRIVATE_KEY={private_key_text(key)}\n"
        "# every other gRPC service (scheduler, executor, drafter):\n"
        f"AUTOM_AUTH_PUBLIC_KEYS={public_key_text(key)}"
    )


def _rotate_signing_key(settings: DefinitionsSettings) -> str:
    from autom.core.auth import (
        generate_private_key,
        load_private_key,
        load_public_keys,
        private_key_text,
        public_key_text,
    )

    current = load_private_key(settings.auth_private_key.get_secret_value())
    new = generate_private_key()
    keys = [public_key_text(new), public_key_text(current)]
    keys += [k for k in map(public_key_text, load_public_keys(settings.auth_public_keys))]
    verify = ",".join(dict.fromkeys(keys))
    return (
        "# 1. every gRPC service (definitions, scheduler, executor, drafter); restart them:\n"
        f"AUTOM_AUTH_PUBLIC_KEYS={verify}\n"
        "# 2. then the definitions service only; restart it (new tokens carry the new kid):\n"
        f"AUTOM_AUTH_PRIVATE_KEY={private_key_text(new)}\n"
        "# 3. once every token signed before step 2 has expired, everywhere:\n"
        f"#    AUTOM_AUTH_PUBLIC_KEYS={public_key_text(new)}"
    )


def _service_credential(argv: Sequence[str]) -> str:
    from autom.core.auth import SERVICE_NAME, ServiceCredentials

    parser = argparse.ArgumentParser(prog="autom-definitions service-credential")
    parser.add_argument("service", help="the service it authenticates (scheduler, executor)")
    args = parser.parse_args(argv)
    if not SERVICE_NAME.fullmatch(args.service):
        parser.error(f"service must match {SERVICE_NAME.pattern}")
    credential, entry = ServiceCredentials.generate(args.service)
    return (
        f"# the {args.service} service only:\n"
        f"AUTOM_SERVICE_CREDENTIAL={credential}\n"
        "# append to the definitions service's AUTOM_SERVICE_CREDENTIALS (comma-separated):\n"
        f"{entry}"
    )


async def _serve(settings: DefinitionsSettings) -> None:
    from autom.core.grpcserver import serve
    from autom.core.tracing import configure_tracing
    from autom.definitions.app import build_app

    configure_tracing("definitions")

    await serve(await build_app(settings))


def main() -> None:
    """Entry point: serve (default), migrate, mint a dev or admin token, or manage keys."""
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command in HELP_FLAGS:
        print(usage("autom-definitions", COMMANDS))
        return
    if command not in COMMANDS:
        sys.exit(f"unknown command {command!r}; use {', '.join(COMMANDS)}")
    # Commands that make a deployment's first keys read no settings (there are none yet).
    if command == "generate-signing-key":
        print(_generate_signing_key())
        return
    if command == "service-credential":
        print(_service_credential(sys.argv[2:]))
        return
    if command == "migrate":
        # A migration needs the database only: the init container that runs it holds no key.
        from autom.core.settings import CommonSettings
        from autom.definitions import db

        common = load_settings(CommonSettings, "autom-definitions")
        configure_logging(common.log_level, common.log_format)
        asyncio.run(db.migrate(common.database_url))
        return
    # Bad arguments are reported before settings are needed.
    bootstrap = _bootstrap_args(sys.argv[2:]) if command == "bootstrap" else None
    settings = load_settings(DefinitionsSettings, "autom-definitions")
    configure_logging(settings.log_level, settings.log_format)
    # Imports per command: minting a token must not load the server (and stays quick).
    if command == "dev-token":
        print(asyncio.run(_dev_token(settings)))
    elif bootstrap is not None:
        print(asyncio.run(_bootstrap(settings, bootstrap)))
    elif command == "admin-token":
        print(_admin_token(settings, sys.argv[2:]))
    elif command == "rotate-secrets":
        # AUTOM_SECRETS_KEY=new,old: every ciphertext moves to `new`; then `old` may go.
        try:
            count = asyncio.run(_rotate_secrets(settings))
        except AutomError as exc:
            sys.exit(f"rotate-secrets: {exc.message} (nothing was changed)")
        print(f"re-encrypted {count} secrets with the newest key")
    elif command == "rotate-signing-key":
        print(_rotate_signing_key(settings))
    elif command == "serve":
        run_loop(_serve(settings))
    else:
        sys.exit(f"unknown command {command!r}; use {', '.join(COMMANDS)}")


if __name__ == "__main__":
    main()
