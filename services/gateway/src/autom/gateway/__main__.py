"""`python -m autom.gateway`: settings -> logging -> uvicorn; SIGTERM drains and exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn

from autom.core.logging import configure_logging
from autom.core.runtime import HELP_FLAGS, load_settings, run_loop, usage
from autom.gateway.app import create_app
from autom.gateway.settings import GatewaySettings


class _PlainUvicornRecords(logging.Filter):
    """Drop uvicorn's ANSI `color_message` extra, which our formatters would print verbatim."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def uvicorn_config(settings: GatewaySettings) -> uvicorn.Config:
    """The uvicorn configuration for the settings (our logging, no websockets)."""
    return uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        ws="none",
        log_config=None,
        access_log=True,
        server_header=False,
        # In-flight requests (streams included) get this long after SIGTERM.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or 1,
    )


class _Server(uvicorn.Server):
    """uvicorn whose SIGTERM/SIGINT drain and then exit 0, like every Autom service."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own handler re-raises the signal after draining (exit status -15).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


async def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then drain connections and close the channels."""
    await _Server(uvicorn_config(settings)).serve()


def main() -> None:
    """Entry point of `autom-gateway` and `python -m autom.gateway`."""
    if len(sys.argv) > 1:
        if sys.argv[1] not in HELP_FLAGS:
            sys.exit(f"autom-gateway takes no command (got {sys.argv[1]!r}); try --help")
        print(usage("autom-gateway", {"serve": "serve HTTP/JSON until SIGTERM (the default)"}))
        return
    settings = load_settings(GatewaySettings, "autom-gateway")
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("uvicorn.error").addFilter(_PlainUvicornRecords())
    run_loop(serve(settings))


if __name__ == "__main__":
    main()
