"""Dispatch: the run's inputs from trigger inputs, fire inputs and runtime keys (pure)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable

from autom.core.jsonschemas import offline_validator, unresolvable_refs
from autom.executor.errors import DispatchError

RUNTIME_KEYS = ("fired_at", "scheduled_for", "last_fired_at")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def runtime_keys(
    fired_at: datetime | None, scheduled_for: datetime | None, last_fired_at: datetime | None
) -> dict[str, str | None]:
    """The runtime keys every run's inputs carry (ISO 8601, UTC)."""
    return {
        "fired_at": _iso(fired_at),
        "scheduled_for": _iso(scheduled_for),
        "last_fired_at": _iso(last_fired_at),
    }


def trigger_inputs(definition: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    """Static inputs of the trigger that fired, found by id (or `<type>_<index>`)."""
    if not trigger_id:
        return {}
    for index, trigger in enumerate(definition.get("triggers") or []):
        tid = trigger.get("id") or f"{trigger.get('type', 'trigger')}_{index}"
        if tid == trigger_id:
            return dict(trigger.get("inputs") or {})
    return {}


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    import json

    schema = json.loads(schema_json)
    refs = unresolvable_refs(schema)
    if refs:
        path, message = refs[0]
        field = "inputs.schema" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        raise DispatchError(f"{field}: {message}", fields=[field])
    return offline_validator(schema)


def _path(error: jsonschema.ValidationError) -> str:
    field = "inputs"
    for part in error.absolute_path:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            field += f".{missing[0]}"
    return field


def build_inputs(
    definition: dict[str, Any], supplied: dict[str, Any], runtime: dict[str, Any]
) -> dict[str, Any]:
    """Validate supplied inputs against inputs.schema (if any) and add the runtime keys.

    No schema: the supplied inputs pass through unchanged, runtime keys included. Runtime keys
    never overwrite a supplied key of the same name. Invalid -> DispatchError with the fields.
    """
    schema = (definition.get("inputs") or {}).get("schema")
    if schema:
        import json

        try:
            validator = _validator(json.dumps(schema, sort_keys=True))
        except jsonschema.SchemaError as exc:
            raise DispatchError(f"inputs.schema is not a valid JSON Schema: {exc.message}") from exc
        try:
            errors = sorted(validator.iter_errors(supplied), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:
            raise DispatchError(f"inputs.schema has an unresolvable reference: {exc}") from exc
        if errors:
            fields = [_path(e) for e in errors]
            summary = "; ".join(f"{_path(e)}: {e.message}" for e in errors[:10])
            raise DispatchError(
                f"inputs do not match inputs.schema: {summary}",
                fields=fields,
                violations=[(_path(e), e.message) for e in errors],
            )
    out = dict(supplied)
    for key, value in runtime.items():
        out.setdefault(key, value)
    return out
