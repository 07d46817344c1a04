"""The catalog of action types, trigger types and agent capabilities (DESIGN §4).

Entries carry types, descriptions and JSON Schemas: what definitions validates against, what
the drafter shows the model and what clients list. Handlers stay with the executor, which
pairs each ActionType here with its implementation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from jsonschema import Draft202012Validator

from autom.core.jsonschemas import offline_validator

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

    @functools.cached_property
    def params_validator(self) -> Draft202012Validator:
        """The validator of `params_schema`, built once (building one walks the schema)."""
        return offline_validator(self.params_schema)


@dataclass(frozen=True)
class TriggerType:
    """A trigger an automation may declare (firing belongs to the scheduler)."""

    type: str
    description: str
    config_schema: JsonSchema
    payload_schema: JsonSchema = field(default_factory=dict)

    @functools.cached_property
    def config_validator(self) -> Draft202012Validator:
        """The validator of `config_schema`, built once."""
        return offline_validator(self.config_schema)


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


# What `agent_task.params.tools` may hold: a capability id or `automation:<name>`.
TOOL_NAME_PATTERN = (
    r"^((automation:)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    r"|mcp:[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_.-]{1,128})$"
)
MAX_TOOLS = 32
MAX_TOOL_CALLS = 100
DEFAULT_MAX_TOOL_CALLS = 10

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
                "tools": {
                    "type": "array",
                    "items": {"type": "string", "pattern": TOOL_NAME_PATTERN},
                    "uniqueItems": True,
                    "maxItems": MAX_TOOLS,
                    "description": "Tools the model may call: a capability id of the catalog "
                    "(http_request, transform, emit_event, ...) or `automation:<name>` (another "
                    "automation of the workspace; the call is a child run).",
                },
                "max_tool_calls": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_TOOL_CALLS,
                    "description": f"Most tool calls of one attempt (default "
                    f"{DEFAULT_MAX_TOOL_CALLS}).",
                },
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
                "llm_calls": {"type": "array"},
            },
        },
        side_effects=True,
    ),
)

# Built-in actions an agent_task may call as tools (each a capability of the catalog).
BUILTIN_TOOL_ACTIONS = ("http_request", "transform", "emit_event")
# Tool references of another kind than a capability id.
AUTOMATION_TOOL_PREFIX = "automation:"
MCP_TOOL_PREFIX = "mcp:"


def builtin_tools(actions: Iterable[ActionType]) -> list[Capability]:
    """The capabilities of the built-in actions agents may call: their params are the input."""
    return [
        Capability(
            id=a.type,
            description=a.description,
            input_schema=a.params_schema,
            output_schema=a.output_schema,
        )
        for a in actions
        if a.type in BUILTIN_TOOL_ACTIONS
    ]


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

# Webhook limits: a trigger may lower them, never raise them past these.
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
WEBHOOK_DEFAULT_BODY_BYTES = 256 * 1024
WEBHOOK_DEFAULTS: dict[str, Any] = {
    "auth": "hmac",
    "tolerance": "5m",
    "signature_header": "x-autom-signature",
    "timestamp_header": "x-autom-timestamp",
    "delivery_header": "x-autom-delivery",
    "max_body_bytes": WEBHOOK_DEFAULT_BODY_BYTES,
    "rate_limit_per_minute": 60,
    "headers": [],
    "query": False,
}
_HEADER_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"}

WEBHOOK_CONFIG_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["secret"],
    "properties": {
        "auth": {
            "type": "string",
            "enum": ["hmac", "hmac_body", "bearer"],
            "default": "hmac",
            "description": "hmac: `sha256=<hex>` HMAC-SHA256 over `<timestamp>.<body>` in the "
            "signature header, the timestamp (Unix seconds) in the timestamp header (or both "
            "in the signature header as `t=<ts>,v1=<hex>`); "
            "hmac_body: HMAC-SHA256 over the body alone, for senders such as GitHub "
            "(signature_header x-hub-signature-256, delivery_header x-github-delivery), "
            "where the delivery id is the only replay guard; bearer: "
            "`Authorization: Bearer <secret>` for senders that cannot sign.",
        },
        "secret": {
            "type": "string",
            "pattern": r"^[A-Z][A-Z0-9_]{0,127}$",
            "description": "Name of the workspace secret holding the signing key (or token).",
        },
        "tolerance": {
            **_DURATION,
            "default": "5m",
            "description": "How far the signed timestamp may be from now (replay window).",
        },
        "signature_header": {**_HEADER_NAME, "default": "x-autom-signature"},
        "timestamp_header": {**_HEADER_NAME, "default": "x-autom-timestamp"},
        "delivery_header": {
            **_HEADER_NAME,
            "default": "x-autom-delivery",
            "description": "A repeated delivery id yields the same run, never a second one.",
        },
        "max_body_bytes": {
            "type": "integer",
            "minimum": 1,
            "maximum": WEBHOOK_MAX_BODY_BYTES,
            "default": WEBHOOK_DEFAULT_BODY_BYTES,
        },
        "rate_limit_per_minute": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "headers": {
            "type": "array",
            "items": _HEADER_NAME,
            "maxItems": 32,
            "description": "Request headers copied into `inputs.headers` (names lower-cased).",
        },
        "query": {
            "type": "boolean",
            "default": False,
            "description": "Copy the query parameters into `inputs.query`.",
        },
    },
    "additionalProperties": False,
}

RUN_STATUSES = ["succeeded", "failed", "timed_out", "cancelled"]
_SUBJECT_TOKEN = r"([A-Za-z0-9_-]+|\*)"
EVENT_CONFIG_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "subject": {
            "type": "string",
            "pattern": rf"^(>|{_SUBJECT_TOKEN}(\.{_SUBJECT_TOKEN})*(\.>)?)$",
            "description": "Subject under the workspace's prefix (`*` one token, `>` the rest): "
            "what `emit_event` published, or `runs.<status>` when any run of the workspace "
            "finishes with that status.",
        },
        "source": {
            "type": "object",
            "required": ["automation"],
            "properties": {
                "automation": {"type": "string", "minLength": 1, "description": "Id or name."},
                "status": {
                    "type": "array",
                    "items": {"type": "string", "enum": RUN_STATUSES},
                    "minItems": 1,
                    "default": ["failed"],
                },
            },
            "additionalProperties": False,
            "description": "When a run of that automation finishes with one of these statuses "
            "(default: failed).",
        },
        "filter": {
            "type": "string",
            "description": "A condition (like a step's `when`) over `event.subject` and "
            "`event.data`; the run starts only when it is true.",
        },
    },
    "anyOf": [{"required": ["subject"]}, {"required": ["source"]}],
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
    TriggerType(
        type="webhook",
        description=(
            "Start a run when an HTTP POST arrives at the automation's own URL "
            "(`/v1/hooks/<hook id>`, shown on create). The JSON object body becomes the "
            "run's inputs. Signed with HMAC-SHA256 by a workspace secret (or a static bearer "
            "secret); a repeated delivery id never starts a second run."
        ),
        config_schema=WEBHOOK_CONFIG_SCHEMA,
        payload_schema={
            "type": "object",
            "description": "The JSON body's keys, plus `headers` and `query` when configured.",
        },
    ),
    TriggerType(
        type="event",
        description=(
            "Start a run for each matching event of the workspace: one an `emit_event` step "
            "published (`subject`), or the end of another automation's run "
            "(`source: {automation: X, status: [failed]}`), optionally narrowed by `filter`. "
            "Chains stop at a maximum depth (default 5)."
        ),
        config_schema=EVENT_CONFIG_SCHEMA,
        payload_schema={
            "type": "object",
            "description": "The emitted JSON object, or for a finished run: run_id, "
            "automation_id, status and error.",
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
    for tool in builtin_tools(BUILTIN_ACTIONS):
        catalog.capabilities.register(tool)
    if plugins:
        _load_plugins("autom.actions", catalog.actions)
        _load_plugins("autom.triggers", catalog.triggers)
        _load_plugins("autom.capabilities", catalog.capabilities)
    return catalog
