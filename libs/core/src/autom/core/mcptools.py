"""MCP servers as tool sources: list and call their tools over streamable HTTP (official SDK),
every connection checked against the one SSRF policy first.

Definitions lists tools to validate `mcp:<server>/<tool>` names; the executor lists and calls
them in the agent loop. Both go through here.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from autom.core.netpolicy import Policy, Refused, Unresolvable, pinned_address, refused_reason
from autom.core.registry import MCP_TOOL_PREFIX

MCP_SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# The only template a header value may hold: a whole workspace secret, rendered by definitions.
SECRET_REF = re.compile(r"\{\{\s*secrets\.([A-Z][A-Z0-9_]*)\s*\}\}")
DEFAULT_TIMEOUT = 30.0
DEFAULT_TTL = 300.0


class McpError(Exception):
    """An MCP server could not be reached, refused us, or answered with an error."""


class McpRefused(McpError):
    """The server's address is not one the SSRF policy lets us reach."""


def split_tool(declared: str) -> tuple[str, str] | None:
    """`mcp:<server>/<tool>` -> (server, tool), or None when malformed."""
    if not declared.startswith(MCP_TOOL_PREFIX):
        return None
    server, sep, tool = declared[len(MCP_TOOL_PREFIX) :].partition("/")
    if not sep or not MCP_SERVER_NAME.match(server) or not tool or "/" in tool:
        return None
    return server, tool


def url_problem(url: str, policy: Policy) -> str | None:
    """Why a server URL is unusable before any lookup (scheme, host, literal SSRF), or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http:// or https:// URL with a host"
    if "{{" in url or "{%" in url:
        return "must not hold templates"
    why = refused_reason(host, policy)
    if why is not None:
        return f"may not reach {why}; allow it with AUTOM_HTTP_ALLOW_CIDRS / AUTOM_HTTP_ALLOW_HOSTS"
    return None


async def checked_address(url: str, policy: Policy) -> str:
    """The address to connect to for `url`; every address its host resolves to must pass."""
    why = url_problem(url, policy)
    if why is not None:
        raise McpRefused(why)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return await pinned_address(parts.hostname or "", port, policy)
    except Refused as exc:
        raise McpRefused(str(exc)) from exc
    except Unresolvable as exc:
        raise McpError(str(exc)) from exc


@dataclass(frozen=True)
class Endpoint:
    """Where an MCP server listens and the headers (secrets rendered) to send it."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, url: str, headers: Mapping[str, str]) -> Endpoint:
        """From a header mapping."""
        return cls(url, tuple(sorted(headers.items())))


def mask(value: Any, endpoint: Endpoint) -> Any:
    """`value` with the endpoint's header values (which may hold secrets) replaced by ***."""
    secrets = [v for _, v in endpoint.headers if len(v) >= 4]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: mask(v, endpoint) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, endpoint) for v in value]
    return value


@dataclass(frozen=True)
class McpTool:
    """One tool a server offers."""

    name: str
    description: str
    input_schema: dict[str, Any]


@functools.cache
def _pinned_transport() -> type[Any]:
    """The transport class; httpx2 is loaded only once an MCP server is reached."""
    import httpx2

    class PinnedTransport(httpx2.AsyncHTTPTransport):
        """Every request goes to the address checked for its host (no second DNS lookup)."""

        def __init__(self, policy: Policy) -> None:
            super().__init__()
            self._policy = policy

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            url = request.url
            address = await checked_address(str(url), self._policy)
            if url.scheme == "https":
                # Connect to the pinned address, verify the certificate for the real name.
                request.extensions = {**request.extensions, "sni_hostname": url.host}
            # The Host header was set from the real URL when the request was built.
            request.url = url.copy_with(host=address)
            return await super().handle_async_request(request)

    return PinnedTransport


@asynccontextmanager
async def _client(endpoint: Endpoint, policy: Policy, timeout: float) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    # Checked up front too, so a refused server fails with a clear error before the SDK starts.
    await checked_address(endpoint.url, policy)
    # trust_env=False: an environment proxy would connect on our behalf, past the pin.
    http = httpx2.AsyncClient(
        headers=dict(endpoint.headers),
        timeout=httpx2.Timeout(timeout),
        trust_env=False,
        transport=_pinned_transport()(policy),
    )
    async with http, Client(streamable_http_client(endpoint.url, http_client=http)) as client:
        yield client


def _failure(endpoint: Endpoint, exc: BaseException) -> McpError:
    # anyio task groups wrap transport failures in exception groups.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            break
        if isinstance(cause, McpError):
            return cause
        cause = cause.__cause__ or cause.__context__
    text = mask(str(exc) or type(exc).__name__, endpoint)
    return McpError(f"MCP server {urlsplit(endpoint.url).netloc}: {text[:300]}")


async def list_tools(
    endpoint: Endpoint, policy: Policy, *, timeout: float = DEFAULT_TIMEOUT
) -> list[McpTool]:
    """Every tool the server lists (all pages)."""
    try:
        async with asyncio.timeout(timeout), _client(endpoint, policy, timeout) as client:
            tools: list[McpTool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += [
                    McpTool(t.name, t.description or "", dict(t.input_schema or {}))
                    for t in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    return tools
    except (Exception, BaseExceptionGroup) as exc:
        raise _failure(endpoint, exc) from exc


async def call_tool(
    endpoint: Endpoint,
    policy: Policy,
    name: str,
    arguments: dict[str, Any],
    *,
    idempotency_key: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> Any:
    """The tool's result as data: its structured content, else its text blocks.

    The idempotency key travels in the request's `_meta` so a server can dedupe a replay.
    """
    try:
        async with asyncio.timeout(timeout), _client(endpoint, policy, timeout) as client:
            result = await client.call_tool(
                name, arguments, meta={"autom/idempotency_key": idempotency_key}
            )
    except (Exception, BaseExceptionGroup) as exc:
        raise _failure(endpoint, exc) from exc
    texts = [getattr(block, "text", None) for block in result.content]
    content: Any = (
        result.structured_content
        if result.structured_content is not None
        else "\n".join(t for t in texts if isinstance(t, str))
    )
    content = mask(content, endpoint)
    if result.is_error:
        raise McpError(f"tool {name!r} failed: {str(content)[:500]}")
    return content


@dataclass
class ToolCache:
    """Tool lists per endpoint, kept `ttl` seconds (servers change their tools rarely)."""

    policy: Policy
    ttl: float = DEFAULT_TTL
    timeout: float = DEFAULT_TIMEOUT
    _entries: dict[Endpoint, tuple[float, list[McpTool]]] = field(default_factory=dict)

    async def tools(self, endpoint: Endpoint, *, fresh: bool = False) -> list[McpTool]:
        """The server's tools, from the cache unless expired or `fresh`."""
        now = time.monotonic()
        hit = self._entries.get(endpoint)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        tools = await list_tools(endpoint, self.policy, timeout=self.timeout)
        self._entries[endpoint] = (now + self.ttl, tools)
        if len(self._entries) > 1000:
            # Expired entries go first; the cache never grows without bound.
            for key in [k for k, (exp, _) in self._entries.items() if exp <= now]:
                del self._entries[key]
        return tools
