"""The tools an agent_task may call: built-in actions, other automations of the workspace and
tools of the workspace's MCP servers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from autom.core.jsonschemas import offline_validator
from autom.core.mcptools import Endpoint, McpError, McpRefused, ToolCache, call_tool, split_tool
from autom.core.registry import (
    AUTOMATION_TOOL_PREFIX,
    BUILTIN_TOOL_ACTIONS,
    MCP_TOOL_PREFIX,
    JsonSchema,
)
from autom.executor.actions.base import Action, ActionContext
from autom.executor.actions.ssrf import SsrfRefused
from autom.executor.errors import StepError

ToolCall = Callable[[dict[str, Any], ActionContext], Awaitable[Any]]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
AUTOMATION_TOOL_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "inputs": {"type": "object", "description": "The automation's inputs."},
    },
    "additionalProperties": False,
}


class ToolArgumentsInvalid(StepError):
    """The model's arguments are not JSON or do not match the tool's input schema."""

    type_name = "ToolArgumentsInvalid"
    default_retryable = False


@dataclass(frozen=True)
class Tool:
    """One tool as the model sees it (`function`) and as the definition names it."""

    declared: str
    function: str
    description: str
    parameters: JsonSchema
    call: ToolCall

    def spec(self) -> dict[str, Any]:
        """The OpenAI function-calling entry (litellm translates it for other providers)."""
        return {
            "type": "function",
            "function": {
                "name": self.function,
                "description": self.description[:1024],
                "parameters": self.parameters or {"type": "object"},
            },
        }

    def check(self, arguments: Any) -> None:
        """Refuse arguments the tool's input schema does not accept."""
        errors = list(offline_validator(self.parameters).iter_errors(arguments))
        if errors:
            raise ToolArgumentsInvalid(
                "arguments do not match the tool's schema: "
                + "; ".join(e.message for e in errors[:5])
            )


def function_name(declared: str, taken: set[str]) -> str:
    """A function name providers accept (`^[A-Za-z0-9_-]{1,64}$`), unique among `taken`."""
    base = _UNSAFE.sub("_", declared.replace(":", "__"))[:60] or "tool"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base[:57]}_{n}"
    taken.add(name)
    return name


async def _call_child(arguments: dict[str, Any], ctx: ActionContext, automation: str) -> Any:
    if ctx.child_runs is None:
        raise StepError(
            "automations cannot be called as tools here", retryable=False, type_name="Unavailable"
        )
    return await ctx.child_runs.run(ctx, automation, dict(arguments.get("inputs") or {}))


class McpServerSource(Protocol):
    """Where the executor learns a workspace's MCP servers (definitions owns them)."""

    async def mcp_servers(
        self, workspace_id: str, names: Sequence[str], run_id: str
    ) -> dict[str, Endpoint]:
        """The registered servers among `names`, secrets in their headers rendered."""
        ...


def _mcp_failure(exc: McpError) -> StepError:
    if isinstance(exc, McpRefused):
        return SsrfRefused(str(exc))
    return StepError(str(exc), retryable=True, type_name="McpError")


class McpTools:
    """The tools of a workspace's MCP servers: listed through a TTL cache, called per call."""

    def __init__(self, source: McpServerSource, cache: ToolCache) -> None:
        self._source = source
        self._cache = cache

    async def resolve(self, declared: Sequence[str], ctx: ActionContext) -> dict[str, Tool]:
        """`mcp:<server>/<tool>` name -> tool (function name filled in by the toolbox)."""
        wanted = {name: split_tool(name) for name in declared}
        servers = {parts[0] for parts in wanted.values() if parts is not None}
        endpoints = await self._source.mcp_servers(ctx.workspace_id, sorted(servers), ctx.run_id)
        out = {}
        for name, parts in wanted.items():
            endpoint = endpoints.get(parts[0]) if parts is not None else None
            if parts is None or endpoint is None:
                raise StepError(
                    f"tool {name!r}: no such MCP server is registered",
                    retryable=False,
                    type_name="ValidationError",
                )
            server, tool_name = parts
            try:
                listed = {t.name: t for t in await self._cache.tools(endpoint)}
            except McpError as exc:
                raise _mcp_failure(exc) from exc
            found = listed.get(tool_name)
            if found is None:
                raise StepError(
                    f"MCP server {server!r} no longer has the tool {tool_name!r}",
                    retryable=False,
                    type_name="ValidationError",
                )
            out[name] = Tool(
                name,
                "",
                f"{found.description} (tool of the MCP server {server!r})",
                found.input_schema,
                self._caller(endpoint, tool_name),
            )
        return out

    def _caller(self, endpoint: Endpoint, tool: str) -> ToolCall:
        async def call(arguments: dict[str, Any], ctx: ActionContext) -> Any:
            try:
                return await call_tool(
                    endpoint,
                    self._cache.policy,
                    tool,
                    arguments,
                    idempotency_key=ctx.idempotency_key,
                    timeout=self._cache.timeout,
                )
            except McpError as exc:
                raise _mcp_failure(exc) from exc

        return call


class Toolbox:
    """Resolves the tool names of a definition into callable tools."""

    def __init__(self, actions: Mapping[str, Action], mcp: McpTools | None = None) -> None:
        self._actions = {k: v for k, v in actions.items() if k in BUILTIN_TOOL_ACTIONS}
        self._mcp = mcp

    async def resolve(self, declared: Sequence[str], ctx: ActionContext) -> list[Tool]:
        """Every declared tool; a name this executor cannot call fails the step."""
        mcp_names = [n for n in declared if n.startswith(MCP_TOOL_PREFIX)]
        if mcp_names and self._mcp is None:
            raise StepError(
                "MCP tools are not available in this executor",
                retryable=False,
                type_name="ValidationError",
            )
        remote = await self._mcp.resolve(mcp_names, ctx) if self._mcp and mcp_names else {}
        taken: set[str] = set()
        tools = []
        for name in declared:
            if name in remote:
                tools.append(replace(remote[name], function=function_name(name, taken)))
                continue
            if name.startswith(AUTOMATION_TOOL_PREFIX):
                target = name[len(AUTOMATION_TOOL_PREFIX) :]

                async def call(args: dict[str, Any], ctx: ActionContext, t: str = target) -> Any:
                    return await _call_child(args, ctx, t)

                tools.append(
                    Tool(
                        name,
                        function_name(name, taken),
                        f"Run the automation {target!r} with the given inputs; returns the "
                        "output of its last step.",
                        AUTOMATION_TOOL_SCHEMA,
                        call,
                    )
                )
                continue
            action = self._actions.get(name)
            if action is None:
                raise StepError(
                    f"tool {name!r} is not available in this executor",
                    retryable=False,
                    type_name="ValidationError",
                )
            tools.append(
                Tool(
                    name,
                    function_name(name, taken),
                    action.spec.description,
                    action.spec.params_schema,
                    action.handler,
                )
            )
        return tools
