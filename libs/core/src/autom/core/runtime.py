"""What every service connects to at start: PostgreSQL, NATS JetStream, the token signer.

Every service is wired through `open_runtime` and `Runtime.app`, and started by `run_service`;
none repeats connection, stream or server plumbing of its own.
"""

from __future__ import annotations

import asyncio
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
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import Background, Cleanup, GrpcApp, Loop, Register, Supervision, serve
from autom.core.logging import configure_logging
from autom.core.revocations import revocation_feed
from autom.core.settings import CommonSettings, ServiceSettings
from autom.core.tracing import configure_tracing

S = TypeVar("S", bound=ServiceSettings)
C = TypeVar("C", bound=CommonSettings)


def build_signer(settings: ServiceSettings) -> TokenSigner:
    """The token signer of a service (the one place it is built from settings)."""
    return TokenSigner(settings.auth_secret.get_secret_value())


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
    signer: TokenSigner
    _closed: bool = field(default=False, repr=False)

    def background(self) -> list[Loop]:
        """Loops every service runs: the token revocation feed."""
        return [Loop("revocations", revocation_feed(self.js, self.signer.revocations).run)]

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
            signer=self.signer,
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
        )

    async def close(self) -> None:
        """Drain in-flight NATS work, then close database connections."""
        if self._closed:
            return
        self._closed = True
        if not self.nc.is_closed:
            await self.nc.drain()
        await self.engine.dispose()


async def open_runtime(
    settings: ServiceSettings, *, name: str, streams: Sequence[bus.StreamSpec] = ()
) -> Runtime:
    """Connect to PostgreSQL and NATS, declare the streams this service owns, build the signer.

    A service declares only its own streams: one that declared another's would revert the
    owner's settings (a consumer of a stream not there yet is retried by its supervisor).
    """
    engine = create_engine(
        url=settings.database_url, application_name=f"autom-{name}", pool_size=settings.db_pool_size
    )
    try:
        nc = await bus.connect(settings.nats_url, name=f"autom-{name}")
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
        name=name, settings=settings, engine=engine, nc=nc, js=js, signer=build_signer(settings)
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
    settings = load_settings(settings_factory, prog)
    configure_logging(settings.log_level, settings.log_format)
    if command == "serve":
        configure_tracing(prog.removeprefix("autom-"))

        async def _serve() -> None:
            await serve(await build_app(settings))

        asyncio.run(_serve())
    elif command == "migrate":
        asyncio.run(migrate(settings.database_url))
    elif command in (commands := commands or {}):
        result = asyncio.run(commands[command](settings))
        if result is not None:
            print(result)
    else:
        names = ", ".join(["serve", "migrate", *commands])
        sys.exit(f"unknown command {command!r}; use {names}")
