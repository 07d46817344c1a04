"""A small MCP server (the official SDK's own, streamable HTTP) for tests and local tries.

`python -m autom.devstack.mcpserver PORT` serves `/mcp` on 127.0.0.1 with three tools: `add`,
`lookup` and `tally` (how many times it was called, this one included). `lookup` answers with
what it was sent (the Authorization header, the idempotency key of the request's `_meta`) so
tests can see both arrive.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

TABLE = {"alpha": "first", "beta": "second"}


def build() -> MCPServer:
    """The server with its tools."""
    server = MCPServer("autom-test", log_level="WARNING")

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Look a key up in a small table.")
    def lookup(key: str, ctx: Context) -> dict[str, Any]:
        meta = ctx.request_context.meta or {}
        headers = ctx.headers or {}
        return {
            "key": key,
            "value": TABLE.get(key),
            "authorization": headers.get("authorization", ""),
            "idempotency_key": meta.get("autom/idempotency_key", ""),
        }

    calls = {"tally": 0}

    @server.tool(description="Count this call; returns how many calls there were.")
    def tally() -> int:
        calls["tally"] += 1
        return calls["tally"]

    return server


@contextlib.contextmanager
def running(port: int, *, timeout: float = 30.0) -> Iterator[str]:
    """Run the server in a subprocess until the block ends; yields its URL."""
    # A file, not a pipe: a chatty server never blocks on a full pipe.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autom.devstack.mcpserver", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    err = log.read().decode(errors="replace")
                    raise RuntimeError(f"MCP test server exited: {err[-2000:]}")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("MCP test server did not start listening")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    build().run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
