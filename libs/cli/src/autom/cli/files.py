"""Definitions from YAML or JSON files, and `k=v` inputs, as protobuf messages."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2

from autom.api.common.v1 import definition_pb2
from autom.cli.errors import usage
from autom.core.definition_text import DefinitionLoader, unknown_key

_Loader = DefinitionLoader


def _plain(value: Any, path: str) -> Any:
    """JSON-compatible data; mapping keys must be strings."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise usage(f"{path or 'the file'}: key {key!r} must be a string")
            out[key] = _plain(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        raise usage(f"{path}: NaN is not allowed")
    return value


def read_document(path: str) -> dict[str, Any]:
    """A YAML or JSON mapping from a file, or from stdin when `path` is `-`."""
    name = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise usage(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        # `_Loader` is a SafeLoader subclass: no arbitrary objects.
        data = json.loads(text) if path.endswith(".json") else yaml.load(text, Loader=_Loader)
    except ValueError as exc:
        raise usage(f"{name} is not valid JSON: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise usage(f"{name} is not valid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        raise usage(f"{name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise usage(f"{name} must hold a mapping (the automation definition)")
    result: dict[str, Any] = _plain(data, "")
    return result


_unknown_key = unknown_key


def load_definition(path: str) -> definition_pb2.AutomationDefinition:
    """The AutomationDefinition in a YAML/JSON file (snake_case or lowerCamelCase keys)."""
    data = read_document(path)
    definition = definition_pb2.AutomationDefinition()
    source = "stdin" if path == "-" else path
    try:
        json_format.ParseDict(data, definition)
    except json_format.ParseError as exc:
        unknown = _unknown_key(exc)
        if unknown is not None:
            raise usage(f"{source}: {unknown[0]}", [unknown[1]]) from None
        raise usage(f"{source}: {exc}") from None
    return definition


def parse_inputs(pairs: Sequence[str], inputs_json: str | None = None) -> struct_pb2.Struct:
    """`k=v` pairs (values parsed as JSON when they are JSON, else strings) over a JSON object."""
    values: dict[str, Any] = {}
    if inputs_json:
        try:
            loaded = json.loads(inputs_json)
        except ValueError as exc:
            raise usage(f"--inputs is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise usage("--inputs must be a JSON object")
        values.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise usage(f"--input {pair!r}: use key=value")
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    struct = struct_pb2.Struct()
    try:
        json_format.ParseDict(values, struct)
    except json_format.ParseError as exc:
        raise usage(f"invalid inputs: {exc}") from None
    return struct
