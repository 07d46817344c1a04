"""The web console (`/ui`): a browser client of the public API, mounted by the gateway."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc

from autom.gateway.console.app import PREFIX, Console
from autom.gateway.settings import GatewaySettings

# A draft is several model calls (and repair rounds), each bounded by the drafter itself.
DRAFT_TIMEOUT_SECONDS = 300.0


def mount_console(
    settings: GatewaySettings, channel_for: Callable[[str], grpc.aio.Channel]
) -> Console:
    """The console for the gateway's settings, calling upstreams on the gateway's channels."""
    key = settings.console_session_key
    examples = settings.console_examples_dir or Path.cwd() / "examples"
    return Console(
        channel_for,
        session_key=key.get_secret_value() if key else None,
        timeout=settings.request_timeout_seconds,
        draft_timeout=min(settings.max_timeout_seconds, DRAFT_TIMEOUT_SECONDS),
        examples_dir=examples if examples.is_dir() else None,
    )


__all__ = ["PREFIX", "Console", "mount_console"]
