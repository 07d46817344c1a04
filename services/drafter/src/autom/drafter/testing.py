"""A scripted OpenAI-compatible chat-completions server on loopback, for tests and local runs.

The drafter reaches it through the real litellm client (`openai/<name>` with api_base = url),
so tests exercise the provider path end to end without the internet and without mocks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a reply (status 200) or an HTTP error, after an optional delay."""

    content: str = ""
    status: int = 200
    delay: float = 0.0
    prompt_tokens: int = 100
    completion_tokens: int = 50
    # `raw`: `content` is the whole body (not a chat completion); `drop`: close the connection.
    mode: str = "reply"


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class ScriptedLLM:
    """Answers POST /v1/chat/completions (and /chat/completions) from a queue, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Scripted] = deque()
        self._runner: web.AppRunner | None = None
        self._raw_type = "text/html"
        self.port = 0

    @property
    def url(self) -> str:
        """The api_base to give litellm."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, content: str | dict[str, Any], **kw: Any) -> None:
        """Queue a 200 answer; a dict is sent as its JSON text."""
        text = content if isinstance(content, str) else json.dumps(content)
        self._queue.append(Scripted(content=text, **kw))

    def error(self, status: int, message: str = "scripted error") -> None:
        """Queue an HTTP error answer."""
        self._queue.append(Scripted(content=message, status=status))

    def raw(self, body: str, content_type: str = "text/html") -> None:
        """Queue a 200 whose body is not a chat completion (a proxy's page, say)."""
        self._queue.append(Scripted(content=body, mode="raw", status=200))
        self._raw_type = content_type

    def drop(self) -> None:
        """Queue a dropped connection: the request is read, then the socket is closed."""
        self._queue.append(Scripted(mode="drop"))

    def slow(self, delay: float, content: str | dict[str, Any] = "{}") -> None:
        """Queue an answer that arrives after `delay` seconds."""
        text = content if isinstance(content, str) else json.dumps(content)
        self._queue.append(Scripted(content=text, delay=delay))

    def clear(self) -> None:
        """Drop the scripted answers not yet consumed."""
        self._queue.clear()

    @property
    def pending(self) -> int:
        """Scripted answers not yet consumed."""
        return len(self._queue)

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        """The chat messages of a received request."""
        msgs: list[dict[str, Any]] = self.requests[index]["messages"]
        return msgs

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not self._queue:
            return web.json_response(
                {"error": {"message": "no scripted answer left", "type": "server_error"}},
                status=500,
            )
        item = self._queue.popleft()
        if item.delay:
            await asyncio.sleep(item.delay)
        if item.mode == "drop":
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPInternalServerError()  # never sent: the socket is gone
        if item.mode == "raw":
            return web.Response(text=item.content, content_type=self._raw_type)
        if item.status != 200:
            return web.json_response(
                {
                    "error": {
                        "message": item.content,
                        "type": _ERROR_TYPES.get(item.status, "server_error"),
                        "code": None,
                    }
                },
                status=item.status,
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": item.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": item.prompt_tokens,
                    "completion_tokens": item.completion_tokens,
                    "total_tokens": item.prompt_tokens + item.completion_tokens,
                },
            }
        )

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedLLM:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
