"""What every service connects to at start: PostgreSQL, NATS JetStream, the token verifier.

Every service is wired through `open_runtime` and `Runtime.app`, and started by `run_service`;
none repeats connection, stream or server plumbing of its own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core import bus
from autom.core.auth import (
    CREDENTIAL_PREFIX,
    LEGACY_SECRET_WARNING,
    TokenVerifier,
    legacy_credential,
    load_public_keys,
)
from autom.core.db import create_engine
from autom.core.grpcserver import Background, Cleanup, GrpcApp, Loop, Register, Supervision, serve
from autom.core.logging import configure_logging
from autom.core.natsauth import inbox_prefix
from autom.core.revocations import revocation_feed
from autom.core.servicetokens import ServiceTokens
from autom.core.settings import CommonSettings, ServiceSettings
from autom.core.tracing import configure_tracing

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
C = TypeVar("C", bound=CommonSettings)
T = TypeVar("T")


def build_verifier(settings: ServiceSettings) -> TokenVerifier:
    """The token verifier of a service: public keys only, so it can mint nothing."""
    return TokenVerifier(load_public_keys(settings.auth_public_keys))


def service_tokens(settings: ServiceSettings, service: str) -> ServiceTokens:
    """The service's own refreshed token for calling definitions (needs its credential)."""
    if settings.service_credential is not None:
        credential = settings.service_credential.get_secret_value()
    elif settings.auth_secret is not None:
        credential = legacy_credential(settings.auth_secret.get_secret_value(), service)
    else:
        raise ValueError(f"AUTOM_SERVICE_CREDENTIAL is required for the {service} service")
    if not credential.startswith(f"{CREDENTIAL_PREFIX}{service}."):
        raise ValueError(f"AUTOM_SERVICE_CREDENTIAL is not a credential of the {service} service")
    return ServiceTokens(settings.definitions_addr, credential, tls=settings.grpc_tls)


def page_token_key(settings: ServiceSettings) -> bytes | None:
    """The page-token key from settings (None: each process picks a random one)."""
    key = settings.page_token_key
    if key is not None:
        return key.get_secret_value().encode()
    if settings.auth_secret is not None:
        # Legacy single secret: replicas derive the same page-token key from it.
        secret = settings.auth_secret.get_secret_value().encode()
        return hmac.new(secret, b"autom/legacy/page-tokens", "sha256").hexdigest().encode()
    return None


def supervision(settings: ServiceSettings) -> Supervision:
    """How the service's background loops are restarted, from settings."""
    return Supervision(
        backoff_max_s=settings.loop_backoff_max_seconds,
        healthy_after_s=settings.loop_healthy_after_seconds,
        give_up_after_s=settings.loop_give_up_seconds,
    )


@dataclass
class Runtime:
    """Connections of one service process; `close()` drains NATS then disposes the pool."""

    name: str
    settings: ServiceSettings
    engine: AsyncEngine
    nc: NATS
    js: JetStreamContext
    verifier: TokenVerifier
    _closed: bool = field(default=False, repr=False)

    def background(self) -> list[Loop]:
        """Loops every service runs: the token revocation feed."""
        return [Loop("revocations", revocation_feed(self.js, self.verifier.revocations).run)]

    def app(
        self,
        *,
        service_names: Sequence[str],
        register: Sequence[Register],
        background: Sequence[Loop | Background] = (),
        cleanup: Sequence[Cleanup] = (),
    ) -> GrpcApp:
        """The service's server: its loops plus the runtime's, its cleanup then `close()`."""
        s = self.settings
        return GrpcApp(
            name=self.name,
            verifier=self.verifier,
            service_names=service_names,
            register=register,
            host=s.grpc_host,
            port=s.grpc_port,
            grace_seconds=s.shutdown_grace_seconds,
            background=[*background, *self.background()],
            cleanup=[*cleanup, self.close],
            supervision=supervision(s),
            metrics_host=s.metrics_host,
            metrics_port=s.metrics_port,
            page_token_key=page_token_key(s),
            tls=s.grpc_tls,
        )

    async def close(self) -> None:
        """Drain in-flight NATS work, then close database connections."""
        if self._closed:
            return
        self._closed = True
        if not self.nc.is_closed:
            await self.nc.drain()
        await self.engine.dispose()


async def connect_nats(settings: CommonSettings, service: str) -> NATS:
    """Connect as the service's NATS user, its replies under its own inbox prefix."""
    password = settings.nats_password
    return await bus.connect(
        settings.nats_url,
        name=f"autom-{service}",
        user=settings.nats_user,
        password=password.get_secret_value() if password is not None else None,
        inbox_prefix=inbox_prefix(service),
    )


async def open_runtime(
    settings: ServiceSettings,
    *,
    name: str,
    streams: Sequence[bus.StreamSpec] = (),
    verifier: TokenVerifier | None = None,
) -> Runtime:
    """Connect to PostgreSQL and NATS, declare the streams this service owns.

    Tokens are checked by `verifier` (definitions passes its signer), else by public keys.

    A service declares only its own streams: one that declared another's would revert the
    owner's settings (a consumer of a stream not there yet is retried by its supervisor).
    """
    if settings.auth_secret is not None:
        log.warning(LEGACY_SECRET_WARNING)
    engine = create_engine(
        url=settings.database_url, application_name=f"autom-{name}", pool_size=settings.db_pool_size
    )
    try:
        nc = await connect_nats(settings, name)
    except BaseException:
        await engine.dispose()
        raise
    js = nc.jetstream()
    try:
        if streams:
            await bus.ensure_streams(js, tuple(streams), replicas=settings.nats_stream_replicas)
    except BaseException:
        await nc.close()
        await engine.dispose()
        raise
    return Runtime(
        name=name,
        settings=settings,
        engine=engine,
        nc=nc,
        js=js,
        verifier=verifier or build_verifier(settings),
    )


HELP_FLAGS = ("-h", "--help", "help")
_SERVE_MIGRATE = {
    "serve": "serve gRPC until SIGTERM (the default)",
    "migrate": "upgrade this service's schema to the newest revision (safe to re-run)",
}


def usage(prog: str, commands: Mapping[str, str]) -> str:
    """The `--help` text of a service command: its subcommands, and where settings come from."""
    width = max(len(name) for name in commands)
    lines = [f"usage: {prog} [{'|'.join(commands)}]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in commands.items()]
    lines += [
        "",
        "Settings come from AUTOM_* environment variables (README: Operating Autom).",
    ]
    return "\n".join(lines)


def load_settings(factory: Callable[[], C], prog: str) -> C:
    """Read the settings, or exit 2 naming each bad variable (no traceback, no values)."""
    try:
        return factory()
    except ValidationError as exc:
        problems = [
            f"  AUTOM_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        ]
        print(f"{prog}: invalid settings\n" + "\n".join(problems), file=sys.stderr)
        raise SystemExit(2) from None


def _prog(argv0: str) -> str:
    """`autom-scheduler`, whether started as the console script or `python -m`."""
    path = Path(argv0)
    return f"autom-{path.parent.name}" if path.name == "__main__.py" else path.name or "autom"


def _summary(fn: Callable[..., object]) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a server's main coroutine on uvloop (less CPU per message and query)."""
    import uvloop

    return uvloop.run(main)


def run_service(
    settings_factory: Callable[[], S],
    build_app: Callable[[S], Awaitable[GrpcApp]],
    *,
    migrate: Callable[[str], Coroutine[Any, Any, None]],
    commands: Mapping[str, Callable[[S], Coroutine[Any, Any, object]]] | None = None,
) -> None:
    """A service's entry point: `serve` (default), `migrate`, or one of `commands`.

    Settings are read and logging configured first; a command's non-None result is printed.
    """
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    prog = _prog(sys.argv[0])
    if command in HELP_FLAGS:
        extra = {name: _summary(fn) for name, fn in (commands or {}).items()}
        print(usage(prog, {**_SERVE_MIGRATE, **extra}))
        return
    if command == "migrate":
        # A migration needs the database only: the init container that runs it holds no key.
        common = load_settings(CommonSettings, prog)
        configure_logging(common.log_level, common.log_format)
        asyncio.run(migrate(common.database_url))
        return
    settings = load_settings(settings_factory, prog)
    configure_logging(settings.log_level, settings.log_format)
    if command == "serve":
        configure_tracing(prog.removeprefix("autom-"))

        async def _serve() -> None:
            await serve(await build_app(settings))

        run_loop(_serve())
    elif command in (commands := commands or {}):
        result = asyncio.run(commands[command](settings))
        if result is not None:
            print(result)
    else:
        names = ", ".join(["serve", "migrate", *commands])
        sys.exit(f"unknown command {command!r}; use {names}")
