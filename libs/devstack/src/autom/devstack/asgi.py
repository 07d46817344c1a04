"""An ASGI app on real uvicorn inside the caller's event loop (tests and tools)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the calling process owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` (lifespan on) on a free port in this loop; yield its base URL."""
    config = uvicorn.Config(
        app, host=host, port=0, lifespan="on", ws="none", log_config=None,
        log_level="warning", access_log=False, timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
