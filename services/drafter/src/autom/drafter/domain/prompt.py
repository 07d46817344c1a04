"""The system prompt (schema, catalog, time, examples, protocol) and the repair messages."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from autom.core.errors import Violation
from autom.drafter.domain.examples import EXAMPLES, Example


@dataclass(frozen=True)
class CatalogEntry:
    """One action, trigger or capability as the prompt shows it."""

    name: str
    description: str
    schema: dict[str, Any]
    output_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaInfo:
    """What GetDefinitionSchema answered, in plain Python."""

    envelope: dict[str, Any]
    actions: list[CatalogEntry]
    triggers: list[CatalogEntry]
    capabilities: list[CatalogEntry]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False, ensure_ascii=False)


PROTOCOL = """\
## How to answer
Answer with exactly ONE JSON object and nothing else: no prose, no Markdown, no code fences.
It has exactly one of these shapes:
1. {"definition": {...the complete automation definition...}, "message": "optional one-line note"}
   when the request is clear enough to draft. Fill sensible defaults instead of asking.
2. {"questions": ["...", "..."]}
   only when something essential is missing and has no sensible default (for example: what
   to fetch, or where to send the result). Ask at most three short, specific questions.
3. {"out_of_scope": "one sentence saying why"}
   when the request is not something to automate (a question, chit-chat, harmful, or needs a
   capability the catalog below does not have).
When the user replies to your questions or asks for a change, answer again with the COMPLETE
definition (never a diff)."""

RULES = """\
## Rules for a definition
- Top-level keys only: name, description, goal, triggers, inputs, plan, execution, metadata.
- name matches ^[a-z0-9][a-z0-9_-]{0,62}$ (lower-case words joined by dashes); step ids match
  ^[a-z][a-z0-9_]*$ and are unique.
- Use only the trigger types and actions of the catalog; their config/params must satisfy the
  JSON Schema shown for them (no extra keys).
- Schedules: 5-field cron in config.cron and an IANA zone in config.timezone. When the user
  names no zone, use theirs ($TZ).
- "When X arrives / is posted / on a GitHub push": a webhook trigger. Its JSON body becomes
  inputs.<key>; config.secret names the secret that signs deliveries (GitHub: auth hmac_body,
  signature_header x-hub-signature-256, delivery_header x-github-delivery).
- "When automation X fails / finishes, ...": an event trigger with
  config.source {"automation": "<X's name>", "status": ["failed"]}; inputs then hold run_id,
  automation_id, status and error of X's run. Events an emit_event step published: an event
  trigger with config.subject (and optionally config.filter, a condition on event.data).
- Templates are Jinja: "{{ expr }}". Context: inputs.<key>, trigger.fired_at,
  trigger.scheduled_for, trigger.last_fired_at, steps.<earlier step id>.output (and .status),
  run.id, secrets.<NAME>. A step may only reference EARLIER steps. `when` is an expression;
  a falsy result skips the step.
- Never invent URLs, tokens or credentials: put webhook URLs, API keys and passwords in
  secrets, e.g. "{{ secrets.SLACK_WEBHOOK_URL }}", and mention the secret in "message".
- Durations are strings like "30s", "5m", "1h".
- Do not set metadata.created_from_nl or metadata.draft_id: Autom sets them on approval."""


def _catalog_section(title: str, entries: Iterable[CatalogEntry], key: str) -> str:
    lines = [f"## {title}"]
    for e in entries:
        lines.append(f"- {e.name}: {e.description}")
        lines.append(f"  {key} schema: {_compact(e.schema)}")
        if e.output_schema:
            lines.append(f"  output schema: {_compact(e.output_schema)}")
    if len(lines) == 1:
        lines.append("(none)")
    return "\n".join(lines)


def _examples_section(examples: Sequence[Example]) -> str:
    lines = ["## Examples (user request -> your whole answer)"]
    for ex in examples:
        lines.append(f"User: {ex.intent}")
        lines.append(f"Answer: {_compact(ex.reply)}")
    return "\n".join(lines)


def system_prompt(
    schema: SchemaInfo,
    *,
    now: datetime,
    timezone: str,
    base_definition: dict[str, Any] | None = None,
    examples: Sequence[Example] = EXAMPLES,
) -> str:
    """The drafter's system prompt, built from the live schema and catalog."""
    local = now.astimezone(ZoneInfo(timezone))
    parts = [
        "You are Autom's drafter. You turn a user's request into an automation definition "
        "(JSON) that Autom validates and the user approves before anything runs.",
        PROTOCOL,
        RULES.replace("$TZ", timezone),
        "## Now\n"
        f"Current time: {now.astimezone(ZoneInfo('UTC')).strftime('%Y-%m-%dT%H:%M:%SZ')} "
        f"(UTC), which is {local.strftime('%A %Y-%m-%d %H:%M')} in the user's time zone "
        f"{timezone}.",
        "## Definition JSON Schema\n" + _compact(schema.envelope),
        _catalog_section("Trigger types", schema.triggers, "config"),
        _catalog_section("Actions", schema.actions, "params"),
        _catalog_section(
            "Agent capabilities (tools an agent_task may use)", schema.capabilities, "input"
        ),
        _examples_section(examples),
    ]
    if base_definition is not None:
        parts.append(
            "## You are changing an existing automation\n"
            "Its current definition is below. Answer with the complete new definition: keep "
            "everything the user does not ask to change, including the name.\n"
            + _compact(base_definition)
        )
    return "\n\n".join(parts)


def parse_repair_message(problem: str) -> str:
    """The user turn that asks again after a reply that broke the JSON protocol."""
    return (
        f"Autom could not read that answer: {problem}. Answer again with exactly one JSON "
        'object and nothing around it, with one of the keys "definition", "questions" or '
        '"out_of_scope".'
    )


def default_schedule_zones(definition: dict[str, Any], timezone: str) -> list[str]:
    """Give schedule triggers without a zone the user's zone; one note per trigger changed.

    A model that leaves the zone out would otherwise make "9 am" run at 09:00 UTC.
    """
    notes: list[str] = []
    for i, trigger in enumerate(definition.get("triggers") or []):
        if not isinstance(trigger, dict) or trigger.get("type") != "schedule":
            continue
        config = trigger.get("config")
        if not isinstance(config, dict) or config.get("timezone"):
            continue
        config["timezone"] = timezone
        notes.append(
            f"Trigger {i} named no time zone; it runs in yours ({timezone}). "
            "Say another zone to change it."
        )
    return notes


def repair_message(violations: Sequence[Violation]) -> str:
    """The user turn that feeds validation violations back to the model."""
    lines = ["Autom rejected that definition. Fix every violation below:"]
    lines += [f"- {v.field}: {v.description}" for v in violations]
    lines.append(
        "Answer again with one JSON object in the same protocol, holding the complete "
        "corrected definition."
    )
    return "\n".join(lines)
