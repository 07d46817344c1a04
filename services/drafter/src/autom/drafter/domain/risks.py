"""Warnings for the approval card: steps whose data or destination the user should check.

Validation (definitions) already refuses what can never run safely (unsafe templates,
literal URLs to blocked addresses); these are legal but deserve a look before approval.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autom.core.netpolicy import literal_host
from autom.core.registry import DEFAULT_MAX_TOOL_CALLS
from autom.templating import TemplateError, is_template, iter_templates, referenced_names

# Where a run's caller (or an earlier step's response) decides the value.
_UNTRUSTED = {"inputs": "run inputs", "trigger": "the trigger's payload", "steps": "step outputs"}


def _steps(definition: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    execution = definition.get("execution")
    on_failure = execution.get("on_failure") if isinstance(execution, dict) else None
    for group in (definition.get("plan"), on_failure):
        for step in group if isinstance(group, list) else []:
            if isinstance(step, dict) and isinstance(step.get("params"), dict):
                yield str(step.get("id", "?")), str(step.get("action", "")), step["params"]


def _names(text: str, root: str) -> set[str]:
    try:
        return referenced_names(text, root)
    except TemplateError:
        return set()


def _secrets(params: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for _, text in iter_templates(params, "params"):
        found |= _names(text, "secrets")
    return found


def _listed(names: set[str]) -> str:
    shown = sorted(n for n in names if n != "*") or ["(all of them)"]
    return ", ".join(shown)


def risk_warnings(definition: dict[str, Any]) -> list[str]:
    """One line per risky step: secrets leaving to a host the model wrote, URLs from data."""
    out: list[str] = []
    for sid, action, params in _steps(definition):
        url = params.get("url")
        if action == "http_request" and isinstance(url, str):
            templated = is_template(url)
            sources = [what for root, what in _UNTRUSTED.items() if templated and _names(url, root)]
            sent = _secrets(params)
            host = literal_host(url)
            origin = " and ".join(sources)
            if sources and host is None:
                line = f"Step {sid!r} builds its URL from {origin}: whoever controls them "
                line += "chooses where the request goes"
                if sent:
                    line += f", and it carries secret {_listed(sent)}"
                out.append(line + ".")
            elif sources:
                line = f"Step {sid!r} builds its URL at {host} from {origin}"
                if sent:
                    line += f"; it sends secret {_listed(sent)} to {host}, a host the model wrote"
                out.append(line + ".")
            elif host is not None and sent:
                out.append(
                    f"Step {sid!r} sends secret {_listed(sent)} to {host}, a host the model "
                    "wrote: approve only if that is where the secret belongs."
                )
        elif action == "agent_task":
            sent = _secrets(params)
            if sent:
                out.append(
                    f"Step {sid!r} puts secret {_listed(sent)} into a prompt sent to the "
                    "model provider."
                )
            tools = [t for t in params.get("tools") or [] if isinstance(t, str)]
            if tools:
                # What the tools are called with is the model's choice at run time.
                limit = params.get("max_tool_calls") or DEFAULT_MAX_TOOL_CALLS
                out.append(
                    f"Step {sid!r} lets the model call these tools with arguments it chooses "
                    f"at run time (up to {limit} calls): {', '.join(tools)}."
                )
    return out
