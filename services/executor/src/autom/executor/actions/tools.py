"""The tools an agent_task may call: built-in actions and other automations of the workspace."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autom.core.jsonschemas import offline_validator
from autom.core.registry import AUTOMATION_TOOL_PREFIX, BUILTIN_TOOL_ACTIONS, JsonSchema
from autom.executor.actions.base import Action, ActionContext
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


class Toolbox:
    """Resolves the tool names of a definition into callable tools."""

    def __init__(self, actions: Mapping[str, Action]) -> None:
        self._actions = {k: v for k, v in actions.items() if k in BUILTIN_TOOL_ACTIONS}

    def resolve(self, declared: Sequence[str]) -> list[Tool]:
        """Every declared tool; a name this executor cannot call fails the step."""
        taken: set[str] = set()
        tools = []
        for name in declared:
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
