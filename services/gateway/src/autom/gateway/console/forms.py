"""Forms: urlencoded bodies, and the Run now form generated from an inputs JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

MAX_FORM_BYTES = 512 * 1024


class FormError(ValueError):
    """A form the console cannot read."""


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (last value of a repeated name wins)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form exceeds {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(f"malformed form: {exc}") from exc


@dataclass(frozen=True)
class InputField:
    """One top-level property of the inputs schema as a form control."""

    name: str
    kind: str  # text, number, integer, boolean, select, json
    required: bool
    description: str
    default: str
    options: tuple[str, ...] = ()
    # The options that are not strings, shown as JSON (`1`, `true`, `null`).
    json_options: tuple[str, ...] = ()


def input_fields(schema: dict[str, Any]) -> list[InputField]:
    """Controls for the schema's top-level properties (nested values are edited as JSON)."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: list[InputField] = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, dict) else {}
        kind_of = prop.get("type")
        if isinstance(kind_of, list):
            kind_of = next((k for k in kind_of if k != "null"), "string")
        default = prop.get("default")
        enum = prop["enum"] if isinstance(prop.get("enum"), list) else []
        if enum:
            kind = "select"
        elif kind_of in ("number", "integer", "boolean"):
            kind = kind_of
        elif kind_of in ("object", "array"):
            kind = "json"
        else:
            kind = "text"
        if default is None:
            shown = ""
        elif kind == "json":
            shown = json.dumps(default)
        else:
            shown = str(default).lower() if isinstance(default, bool) else str(default)
        fields.append(
            InputField(
                name=name,
                kind=kind,
                required=name in required,
                description=str(prop.get("description") or prop.get("title") or ""),
                default=shown,
                options=tuple(o if isinstance(o, str) else json.dumps(o) for o in enum),
                json_options=tuple(json.dumps(o) for o in enum if not isinstance(o, str)),
            )
        )
    return fields


def inputs_from_form(fields: list[InputField], form: dict[str, str]) -> dict[str, Any]:
    """The inputs object from the submitted form; empty optional fields are left out."""
    out: dict[str, Any] = {}
    for f in fields:
        key = f"input.{f.name}"
        if f.kind == "boolean":
            out[f.name] = form.get(key) == "on"
            continue
        raw = form.get(key, "").strip()
        if raw == "":
            continue
        try:
            if f.kind == "integer":
                out[f.name] = int(raw)
            elif f.kind == "number":
                out[f.name] = float(raw)
            elif f.kind == "json":
                out[f.name] = json.loads(raw)
            elif f.kind == "select":
                if raw not in f.options:
                    raise FormError(f"inputs.{f.name}: choose one of the listed values")
                out[f.name] = json.loads(raw) if raw in f.json_options else raw
            else:
                out[f.name] = raw
        except ValueError as exc:
            raise FormError(f"inputs.{f.name}: {exc}") from exc
    return out
