"""A scripted OpenAI-compatible model for tests of agent steps (tool calls included).

The drafter's `autom.drafter.testing.ScriptedLLM` scripts JSON drafts; this one scripts the
text answers and tool calls an agent loop sees, and can hold a request to stage a crash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


class ScriptedModel:
    """Answers POST /v1/chat/completions from a script, recording the requests.

    An answer is the reply's text, or {"tool_calls": [(name, arguments), ...]} for a reply
    that asks for tool calls; `hold` (when set) makes the next request wait for it.
    """

    def __init__(self) -> None:
        self.answers: list[str | dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self.hold: asyncio.Event | None = None
        self.hold_after = 0
        # Every event a request waited on: a test may replace `hold` while one still waits.
        self.held: list[asyncio.Event] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.hold is not None and len(self.requests) > self.hold_after:
            self.held.append(hold := self.hold)
            await hold.wait()
        answer = self.answers.pop(0) if self.answers else "ok"
        n = len(self.requests)
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        finish = "stop"
        if isinstance(answer, dict):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{n}_{i}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments)},
                    }
                    for i, (name, arguments) in enumerate(answer["tool_calls"])
                ],
            }
            finish = "tool_calls"
        return web.json_response(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body.get("model", "test-model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )


@asynccontextmanager
async def serving(model: ScriptedModel) -> AsyncIterator[ScriptedModel]:
    """`model` answering on a loopback port (model.port) until the block ends."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", model.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    model.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield model
    finally:
        # A request left waiting would hold the server's shutdown for its 60 s timeout.
        for event in [*model.held, *([model.hold] if model.hold else [])]:
            event.set()
        await runner.cleanup()
