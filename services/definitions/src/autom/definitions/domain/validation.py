"""Every rule of DESIGN §3, reported at once as field violations with paths."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ValidationError

from autom.core.errors import Violation
from autom.core.jsonschemas import offline_validator, unresolvable_refs
from autom.core.mcptools import split_tool
from autom.core.netpolicy import Policy, literal_host, refused_reason
from autom.core.registry import (
    AUTOMATION_TOOL_PREFIX,
    JSON_SCHEMA_METASCHEMA,
    MCP_TOOL_PREFIX,
    ActionType,
    Catalog,
)
from autom.definitions.domain.model import (
    MAX_DEFINITION_BYTES,
    MAX_STEPS,
    NAME_PATTERN,
    Definition,
    ExecutionPolicy,
    InputsSpec,
    Step,
    Trigger,
)
from autom.schedule import parse_duration, schedule_errors
from autom.templating import (
    TemplateError,
    iter_templates,
    parse_condition,
    parse_template,
    referenced_step_ids,
)

M = TypeVar("M", bound=BaseModel)

# One knob decides overlapping runs (DESIGN §6); a trigger-level one was silently ignored.
OVERLAP_MOVED = (
    "a trigger has no overlap setting; set execution.concurrency instead "
    "(allow | skip | buffer_one | buffer_all | cancel_other)"
)


def join_path(base: str, parts: Iterable[str | int]) -> str:
    """`plan[1]` + ('params', 'url') -> `plan[1].params.url`."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _pydantic_violations(exc: ValidationError) -> list[Violation]:
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "string_pattern_mismatch":
            message = f"must match {err.get('ctx', {}).get('pattern', 'the pattern')}"
        out.append(Violation(join_path("", loc) or "definition", message))
    return out


def _schema_violations(
    validator: Draft202012Validator, instance: Any, base: str, *, allow_templates: bool
) -> list[Violation]:
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        # A templated value is checked when rendered, not against the static schema.
        if allow_templates and isinstance(err.instance, str) and "{{" in err.instance:
            continue
        out.append(Violation(join_path(base, err.absolute_path), _schema_message(err)))
    return out


def _schema_message(err: SchemaError) -> str:
    if err.validator == "additionalProperties":
        return f"unknown field: {err.message.split('(')[-1].rstrip(')')}"
    return str(err.message)


def _duration(value: str | None, path: str, out: list[Violation]) -> None:
    if value is None:
        return
    try:
        parse_duration(value)
    except ValueError as exc:
        out.append(Violation(path, str(exc)))


def _check_template(
    text: str, path: str, out: list[Violation], *, condition: bool = False
) -> set[str]:
    try:
        (parse_condition if condition else parse_template)(text)
    except TemplateError as exc:
        out.append(Violation(path, exc.message))
        return set()
    return referenced_step_ids(text, condition=condition)


def _check_destination(step: Step, path: str, policy: Policy, out: list[Violation]) -> None:
    """An http_request whose written-out host the executor's SSRF guard would refuse."""
    url = step.params.get("url") if step.action == "http_request" else None
    host = literal_host(url) if isinstance(url, str) else None
    why = refused_reason(host, policy) if host else None
    if why is not None:
        out.append(
            Violation(
                path,
                f"http_request may not reach {why}; the executor refuses it unless "
                "AUTOM_HTTP_ALLOW_CIDRS / AUTOM_HTTP_ALLOW_HOSTS allow it",
            )
        )


def _declared_tools(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, name) of every tool of agent_task steps, in a definition in JSON form."""
    out = []
    execution = definition.get("execution")
    on_failure = execution.get("on_failure") if isinstance(execution, dict) else None
    for base, steps in (("plan", definition.get("plan")), ("execution.on_failure", on_failure)):
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            params = step.get("params") if isinstance(step, dict) else None
            if not isinstance(params, dict) or step.get("action") != "agent_task":
                continue
            tools = params.get("tools")
            for j, name in enumerate(tools if isinstance(tools, list) else []):
                if isinstance(name, str):
                    out.append((f"{base}[{i}].params.tools[{j}]", name))
    return out


def tool_automations(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, automation name) of every `automation:<name>` tool of agent_task steps."""
    return [
        (path, name[len(AUTOMATION_TOOL_PREFIX) :])
        for path, name in _declared_tools(definition)
        if name.startswith(AUTOMATION_TOOL_PREFIX)
    ]


def tool_mcp(definition: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field path, server, tool) of every well-formed `mcp:<server>/<tool>` tool."""
    out = []
    for path, name in _declared_tools(definition):
        parts = split_tool(name)
        if parts is not None:
            out.append((path, *parts))
    return out


def _check_tools(step: Step, path: str, catalog: Catalog, out: list[Violation]) -> None:
    """An agent_task's tools: fixed names, each a capability of the catalog or an automation."""
    tools = step.params.get("tools") if step.action == "agent_task" else None
    if not isinstance(tools, list):
        return
    for j, name in enumerate(tools):
        where = f"{path}.params.tools[{j}]"
        if not isinstance(name, str):
            continue
        if "{{" in name or "{%" in name:
            # The tool list is fixed by the definition: no input or tool result may change it.
            out.append(Violation(where, "tool names are fixed: templates are not allowed"))
        elif name.startswith(AUTOMATION_TOOL_PREFIX):
            target = name[len(AUTOMATION_TOOL_PREFIX) :]
            if not re.match(NAME_PATTERN, target):
                out.append(Violation(where, f"{target!r} is not an automation name"))
        elif name.startswith(MCP_TOOL_PREFIX):
            # Whether the server and its tool exist is checked against the registry on save.
            if split_tool(name) is None:
                out.append(Violation(where, "must be mcp:<server>/<tool>"))
        elif name not in catalog.capabilities:
            known = ", ".join(c.id for c in catalog.capabilities.all())
            out.append(
                Violation(
                    where,
                    f"unknown tool {name!r} (a capability: {known}; or automation:<name>)",
                )
            )


def _check_steps(
    steps: Sequence[tuple[int, Step]],
    base: str,
    catalog: Catalog,
    known_ids: set[str],
    *,
    sequential: bool,
    out: list[Violation],
    policy: Policy,
) -> None:
    for i, step in steps:
        path = f"{base}[{i}]"
        _check_destination(step, f"{path}.params.url", policy, out)
        _check_tools(step, path, catalog, out)
        action = catalog.actions.get(step.action)
        if action is None:
            names = ", ".join(a.type for a in catalog.actions.all())
            out.append(Violation(f"{path}.action", f"unknown action {step.action!r} ({names})"))
        else:
            out.extend(
                _schema_violations(
                    action.params_validator, step.params, f"{path}.params", allow_templates=True
                )
            )
            out.extend(_param_schema_refs(action, step.params, f"{path}.params"))
        earlier = known_ids if sequential else known_ids | {s.id for _, s in steps}
        refs: list[tuple[str, set[str]]] = []
        for tpath, text in iter_templates(step.params, f"{path}.params"):
            refs.append((tpath, _check_template(text, tpath, out)))
        if step.when is not None:
            refs.append(
                (f"{path}.when", _check_template(step.when, f"{path}.when", out, condition=True))
            )
        for ref_path, ids in refs:
            for ref in sorted(ids - earlier):
                where = "an earlier step" if sequential else "a plan step"
                if ref == step.id:
                    out.append(Violation(ref_path, f"step {ref!r} cannot reference its own output"))
                else:
                    out.append(Violation(ref_path, f"steps.{ref} does not name {where}"))
        _duration(step.timeout, f"{path}.timeout", out)
        if step.retry is not None:
            _duration(step.retry.initial_delay, f"{path}.retry.initial_delay", out)
            _duration(step.retry.max_delay, f"{path}.retry.max_delay", out)
        if sequential:
            known_ids.add(step.id)


def _param_schema_refs(action: ActionType, params: dict[str, Any], base: str) -> list[Violation]:
    """Outside `$ref`s in params that hold a JSON Schema (e.g. agent_task's output_schema)."""
    out = []
    for name, prop in (action.params_schema.get("properties") or {}).items():
        value = params.get(name)
        if isinstance(prop, dict) and prop.get("$ref") == JSON_SCHEMA_METASCHEMA:
            for path, message in unresolvable_refs(value):
                out.append(Violation(join_path(f"{base}.{name}", path), message))
    return out


def _check_schedule(config: dict[str, Any], base: str, out: list[Violation]) -> None:
    cron, tz = config.get("cron"), config.get("timezone", "UTC")
    if isinstance(cron, str) and isinstance(tz, str):
        out.extend(
            Violation(f"{base}.{exc.field}", exc.message)
            for exc in schedule_errors(
                cron,
                tz,
                on_missing=str(config.get("on_missing", "shift")),
                on_repeated=str(config.get("on_repeated", "first")),
            )
        )
    for key in ("catchup_window", "jitter"):
        value = config.get(key)
        if isinstance(value, str):
            _duration(value, f"{base}.{key}", out)


def validate_definition(
    raw: dict[str, Any], catalog: Catalog, policy: Policy | None = None
) -> tuple[Definition | None, list[Violation]]:
    """Parse and check a definition in its JSON form; returns the model when valid.

    `policy` is the deployment's http_request allow-list (public addresses only when None).
    """
    policy = policy or Policy()
    size = len(json.dumps(raw, separators=(",", ":")).encode())
    if size > MAX_DEFINITION_BYTES:
        return None, [
            Violation(
                "definition", f"definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
            )
        ]
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as exc:
        # A structural error must not hide the rest: check every part that parses on its own.
        out = _pydantic_violations(exc)
        reported = {v.field for v in out}
        out.extend(
            v for v in _check_parts(_lenient_parts(raw), catalog, policy) if v.field not in reported
        )
        return None, out
    out = _check_parts(_Parts.of(definition), catalog, policy)
    return (definition if not out else None), out


@dataclass(frozen=True)
class _Parts:
    """The pieces of a definition the semantic checks read, each with its index."""

    triggers: list[tuple[int, Trigger]]
    schema: dict[str, Any] | None
    plan: list[tuple[int, Step]]
    execution: ExecutionPolicy | None
    on_failure: list[tuple[int, Step]]
    # Set when some steps did not parse: references are checked against every written id.
    all_ids: set[str] | None = None

    @classmethod
    def of(cls, definition: Definition) -> _Parts:
        execution = definition.execution
        return cls(
            triggers=list(enumerate(definition.triggers)),
            schema=definition.inputs.json_schema if definition.inputs else None,
            plan=list(enumerate(definition.plan)),
            execution=execution,
            on_failure=list(enumerate(execution.on_failure if execution else [])),
        )


def _parsed(model: type[M], items: Any) -> list[tuple[int, M]]:
    if not isinstance(items, list):
        return []
    out = []
    for i, item in enumerate(items):
        try:
            out.append((i, model.model_validate(item)))
        except ValidationError:
            continue
    return out


def _lenient_parts(raw: dict[str, Any]) -> _Parts:
    """What can be parsed of a definition that failed as a whole."""
    found = raw.get("execution")
    raw_execution: dict[str, Any] = found if isinstance(found, dict) else {}
    execution: ExecutionPolicy | None = None
    with contextlib.suppress(ValidationError):
        execution = ExecutionPolicy.model_validate({**raw_execution, "on_failure": []})
    schema = None
    with contextlib.suppress(ValidationError):
        schema = InputsSpec.model_validate(raw.get("inputs") or {}).json_schema
    ids = {
        step["id"]
        for steps in (raw.get("plan"), raw_execution.get("on_failure"))
        if isinstance(steps, list)
        for step in steps
        if isinstance(step, dict) and isinstance(step.get("id"), str)
    }
    return _Parts(
        triggers=_parsed(Trigger, raw.get("triggers")),
        schema=schema,
        plan=_parsed(Step, raw.get("plan")),
        execution=execution,
        on_failure=_parsed(Step, raw_execution.get("on_failure")),
        all_ids=ids,
    )


def _check_parts(parts: _Parts, catalog: Catalog, policy: Policy) -> list[Violation]:
    out: list[Violation] = []
    if len(parts.plan) + len(parts.on_failure) > MAX_STEPS:
        out.append(Violation("plan", f"at most {MAX_STEPS} steps (plan and on_failure together)"))

    seen: dict[str, str] = {}
    for base, steps in (("plan", parts.plan), ("execution.on_failure", parts.on_failure)):
        for i, step in steps:
            path = f"{base}[{i}].id"
            if step.id in seen:
                out.append(
                    Violation(path, f"duplicate step id {step.id!r} (first at {seen[step.id]})")
                )
            else:
                seen[step.id] = path

    _check_triggers(parts.triggers, catalog, out)
    schema = _check_inputs_schema(parts.schema, out)
    inputs = None if schema is None else offline_validator(schema)
    for i, trigger in parts.triggers:
        if inputs is not None and trigger.inputs is not None:
            out.extend(
                _schema_violations(
                    inputs, trigger.inputs, f"triggers[{i}].inputs", allow_templates=False
                )
            )

    lenient = parts.all_ids is not None
    known = set(parts.all_ids or ())
    _check_steps(parts.plan, "plan", catalog, known, sequential=not lenient, out=out, policy=policy)
    execution = parts.execution
    if execution is not None:
        _duration(execution.timeout, "execution.timeout", out)
        _duration(execution.step_timeout, "execution.step_timeout", out)
        if execution.retry is not None:
            _duration(execution.retry.initial_delay, "execution.retry.initial_delay", out)
            _duration(execution.retry.max_delay, "execution.retry.max_delay", out)
    plan_ids = known | {s.id for _, s in parts.plan}
    _check_steps(
        parts.on_failure,
        "execution.on_failure",
        catalog,
        plan_ids,
        sequential=not lenient,
        out=out,
        policy=policy,
    )
    return out


def _check_triggers(
    triggers: Sequence[tuple[int, Trigger]], catalog: Catalog, out: list[Violation]
) -> None:
    trigger_seen: set[str] = set()
    for i, trigger in triggers:
        base = f"triggers[{i}]"
        tid = trigger.id or f"{trigger.type}_{i}"
        if tid in trigger_seen:
            out.append(Violation(f"{base}.id", f"duplicate trigger id {tid!r}"))
        trigger_seen.add(tid)
        ttype = catalog.triggers.get(trigger.type)
        if ttype is None:
            names = ", ".join(t.type for t in catalog.triggers.all())
            out.append(
                Violation(f"{base}.type", f"unknown trigger type {trigger.type!r} ({names})")
            )
            continue
        config = trigger.config
        if trigger.type == "schedule" and "overlap" in config:
            out.append(Violation(f"{base}.config.overlap", OVERLAP_MOVED))
            config = {k: v for k, v in config.items() if k != "overlap"}
        errors = _schema_violations(
            ttype.config_validator, config, f"{base}.config", allow_templates=False
        )
        out.extend(errors)
        if trigger.type == "schedule":
            # Fields the schema already refused are not checked twice.
            bad = {v.field for v in errors}
            _check_schedule(
                {k: v for k, v in config.items() if f"{base}.config.{k}" not in bad},
                f"{base}.config",
                out,
            )
        if trigger.type == "webhook" and not errors:
            _duration(config.get("tolerance"), f"{base}.config.tolerance", out)
        if trigger.type == "event" and not errors and config.get("filter"):
            _check_template(str(config["filter"]), f"{base}.config.filter", out, condition=True)


def _check_inputs_schema(
    schema: dict[str, Any] | None, out: list[Violation]
) -> dict[str, Any] | None:
    """The inputs schema when usable, else None with its violations added."""
    if schema is None:
        return None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        out.append(Violation(join_path("inputs.schema", exc.path), exc.message))
        return None
    refs = unresolvable_refs(schema)
    out.extend(Violation(join_path("inputs.schema", path), msg) for path, msg in refs)
    return None if refs else schema
