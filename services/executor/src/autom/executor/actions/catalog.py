"""Pair the catalog's built-in action types with their handlers."""

from __future__ import annotations

from nats.js import JetStreamContext

from autom.core.mcptools import ToolCache
from autom.core.registry import Catalog
from autom.executor.actions.agent import AgentTask
from autom.executor.actions.base import Action, Actions, Handler
from autom.executor.actions.builtin import EmitEvent, log_message, transform, wait
from autom.executor.actions.http import HttpRequestAction
from autom.executor.actions.tools import McpServerSource, McpTools, Toolbox
from autom.executor.settings import ExecutorSettings


def build_actions(
    catalog: Catalog,
    settings: ExecutorSettings,
    js: JetStreamContext | None,
    *,
    http: HttpRequestAction | None = None,
    mcp_servers: McpServerSource | None = None,
) -> tuple[Actions, HttpRequestAction]:
    """Every catalog action type that has a handler here (plugin types without one are left out)."""
    http = http or HttpRequestAction(
        policy=settings.network_policy(),
        max_response_bytes=settings.http_max_response_bytes,
        default_timeout=settings.http_default_timeout_seconds,
        max_redirects=settings.http_max_redirects,
    )
    handlers: dict[str, Handler] = {
        "transform": transform,
        "wait": wait,
        "log": log_message,
        "emit_event": EmitEvent(js),
        "http_request": http,
    }
    tools = {
        spec.type: Action(spec, handlers[spec.type])
        for spec in catalog.actions.all()
        if spec.type in handlers
    }
    mcp = None
    if mcp_servers is not None:
        cache = ToolCache(
            settings.network_policy(),
            ttl=settings.mcp_tools_ttl_seconds,
            timeout=settings.http_default_timeout_seconds,
        )
        mcp = McpTools(mcp_servers, cache)
    handlers["agent_task"] = AgentTask(
        default_model=settings.default_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        timeout=settings.llm_timeout_seconds,
        toolbox=Toolbox(tools, mcp),
    )
    actions = [
        Action(spec, handlers[spec.type]) for spec in catalog.actions.all() if spec.type in handlers
    ]
    return Actions(actions), http
