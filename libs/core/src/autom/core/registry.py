"""The catalog of action types, trigger types and agent capabilities (DESIGN §4).

Entries carry types, descriptions and JSON Schemas: what definitions validates against, what
the drafter shows the model and what clients list. Handlers stay with the executor, which
pairs each ActionType here with its implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class ActionType:
    """An action a step may use."""

    type: str
    description: str
    params_schema: JsonSchema
    output_schema: JsonSchema = field(default_factory=dict)
    side_effects: bool = False


@dataclass(frozen=True)
class TriggerType:
    """A trigger an automation may declare (firing belongs to the scheduler)."""

    type: str
    description: str
    config_schema: JsonSchema
    payload_schema: JsonSchema = field(default_factory=dict)


@dataclass(frozen=True)
class Capability:
    """A tool an agent_task may call."""

    id: str
    description: str
    input_schema: JsonSchema
    output_schema: JsonSchema = field(default_factory=dict)


E = TypeVar("E", ActionType, TriggerType, Capability)


class Registry(Generic[E]):
    """Named entries registered at process start; duplicates raise, misses return None."""

    def __init__(self, key: Callable[[E], str]) -> None:
        self._key: Callable[[E], str] = key
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> E:
        """Add an entry; a second entry with the same key raises ValueError."""
        name = self._key(entry)
        if name in self._entries:
            raise ValueError(f"{name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> E | None:
        """The entry, or None."""
        return self._entries.get(name)

    def all(self) -> list[E]:
        """A copy of every entry, sorted by key."""
        return [self._entries[k] for k in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries


@dataclass
class Catalog:
    """The three registries together."""

    actions: Registry[ActionType]
    triggers: Registry[TriggerType]
    capabilities: Registry[Capability]


# A param whose schema is this `$ref` holds a user-written JSON Schema (checked as one).
JSON_SCHEMA_METASCHEMA = "https://json-schema.org/draft/2020-12/schema"
_DURATION = {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d)\s*)+$"}
_ANY: JsonSchema = {}

BUILTIN_ACTIONS = (
    ActionType(
        type="transform",
        description="Compute an output from templates: `output` is rendered and returned.",
        params_schema={
            "type": "object",
            "required": ["output"],
            "properties": {"output": {"description": "Any JSON value; templates allowed."}},
            "additionalProperties": False,
        },
        output_schema=_ANY,
    ),
    ActionType(
        type="http_request",
        description=(
            "Send an HTTP request. Output: status, headers, json (when JSON) or text. "
            "Private, loopback and metadata addresses are refused unless allow-listed."
        ),
        params_schema={
            "type": "object",
            "required": ["url"],
            "properties": {
                "method": {
                    "type": "string",
                    "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                    "default": "GET",
                },
                "url": {"type": "string", "minLength": 1},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {"type": "object"},
                "json": {"description": "JSON body."},
                "body": {"type": "string", "description": "Raw text body."},
                "timeout": {
                    **_DURATION,
                    "description": "Deadline of the whole request: connect, every redirect "
                    "and the full body (default: the executor's, 30s).",
                },
                "expect_status": {"type": "array", "items": {"type": "integer"}},
                "follow_redirects": {"type": "boolean", "default": True},
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "headers": {"type": "object"},
                "json": {},
                "text": {"type": "string"},
            },
        },
        side_effects=True,
    ),
    ActionType(
        type="wait",
        description="Wait for a duration (e.g. `10ms`, `5s`).",
        params_schema={
            "type": "object",
            "required": ["duration"],
            "properties": {"duration": _DURATION},
            "additionalProperties": False,
        },
        output_schema={"type": "object", "properties": {"waited_ms": {"type": "number"}}},
    ),
    ActionType(
        type="log",
        description="Write a message to the run's log.",
        params_schema={
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "level": {"type": "string", "enum": ["debug", "info", "warning", "error"]},
            },
            "additionalProperties": False,
        },
        output_schema={"type": "object", "properties": {"message": {"type": "string"}}},
    ),
    ActionType(
        type="emit_event",
        description="Publish a JSON event to `automations.custom.<workspace>.<subject>`.",
        params_schema={
            "type": "object",
            "required": ["subject"],
            "properties": {
                "subject": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"},
                "data": {"description": "Any JSON value."},
            },
            "additionalProperties": False,
        },
        output_schema={"type": "object", "properties": {"subject": {"type": "string"}}},
        side_effects=True,
    ),
    ActionType(
        type="agent_task",
        description=(
            "Ask an LLM (any litellm model string). Optional output_schema is enforced; "
            "token usage and cost are recorded and count against execution.budget_usd."
        ),
        params_schema={
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1},
                "system": {"type": "string"},
                "model": {"type": "string"},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_tokens": {"type": "integer", "minimum": 1},
                "output_schema": {"$ref": JSON_SCHEMA_METASCHEMA, "type": "object"},
                "tools": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "json": {},
                "usage": {"type": "object"},
                "cost_usd": {"type": "number"},
            },
        },
        side_effects=True,
    ),
)

# The most fires a schedule may be limited to: any larger number is refused when the
# definition is validated, so the scheduler never meets one (nor a float past 2**53).
MAX_FIRES = 1_000_000_000

SCHEDULE_CONFIG_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["cron"],
    "properties": {
        "cron": {"type": "string", "description": "5 fields, 6 with leading seconds, or a macro"},
        "timezone": {"type": "string", "default": "UTC", "description": "IANA time zone"},
        "on_missing": {"type": "string", "enum": ["shift", "skip"], "default": "shift"},
        "on_repeated": {"type": "string", "enum": ["first", "last", "both"], "default": "first"},
        "catchup": {"type": "string", "enum": ["none", "latest", "all"], "default": "latest"},
        "catchup_window": {**_DURATION, "default": "1h"},
        "jitter": {**_DURATION, "default": "0s"},
        "start_at": {"type": "string", "format": "date-time"},
        "end_at": {"type": "string", "format": "date-time"},
        "max_fires": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_FIRES,
            "description": "Stop after this many fires (0: no limit).",
        },
    },
    "additionalProperties": False,
}

BUILTIN_TRIGGERS = (
    TriggerType(
        type="schedule",
        description="Fire on a cron schedule in an IANA time zone, with a DST policy.",
        config_schema=SCHEDULE_CONFIG_SCHEMA,
        payload_schema={
            "type": "object",
            "properties": {
                "scheduled_for": {"type": "string", "format": "date-time"},
                "fired_at": {"type": "string", "format": "date-time"},
                "last_fired_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    ),
)


def _load_plugins(group: str, registry: Registry[Any]) -> None:
    for ep in entry_points(group=group):
        try:
            loaded = ep.load()
            entries: Iterable[Any] = loaded() if callable(loaded) else loaded
            for entry in entries:
                registry.register(entry)
        except Exception:
            log.exception("failed to load %s entry point %s", group, ep.name)


def build_catalog(*, plugins: bool = True) -> Catalog:
    """Built-ins plus third-party entries from the autom.actions/triggers/capabilities groups."""
    catalog = Catalog(
        actions=Registry(lambda a: a.type),
        triggers=Registry(lambda t: t.type),
        capabilities=Registry(lambda c: c.id),
    )
    for action in BUILTIN_ACTIONS:
        catalog.actions.register(action)
    for trigger in BUILTIN_TRIGGERS:
        catalog.triggers.register(trigger)
    if plugins:
        _load_plugins("autom.actions", catalog.actions)
        _load_plugins("autom.triggers", catalog.triggers)
        _load_plugins("autom.capabilities", catalog.capabilities)
    return catalog
