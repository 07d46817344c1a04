"""Definitions as YAML for the editor, field paths to lines, times in the user's zone."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from autom.api.common.v1 import definition_pb2
from autom.core.definition_text import DefinitionLoader, unknown_key

Violation = tuple[str, str, int | None]  # field path, description, 1-based line (or None)

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def definition_to_yaml(definition: definition_pb2.AutomationDefinition) -> str:
    """The definition as the editor shows it (snake_case keys, proto field order; the keys of
    free-form objects sorted)."""
    data = json_format.MessageToDict(definition, preserving_proto_field_name=True)
    _sort_free_form(definition, data)
    dumped: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return dumped


_FREE_FORM = frozenset({"google.protobuf.Struct", "google.protobuf.Value"})


def _sort_free_form(message: Message, data: dict[str, Any]) -> None:
    """Sort, in place, the keys of `data`'s Struct and map values: their order in a parsed
    proto varies from process to process, and two renderings of one definition must match."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in data or field.message_type is None:
            continue
        value = getattr(message, field.name)
        if field.message_type.full_name in _FREE_FORM or field.message_type.GetOptions().map_entry:
            data[field.name] = _sorted(data[field.name])
        elif isinstance(data[field.name], list):
            for item, item_data in zip(value, data[field.name], strict=True):
                _sort_free_form(item, item_data)
        else:
            _sort_free_form(value, data[field.name])


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of a field path like `plan[0].params.url` in YAML text."""
    try:
        node = yaml.compose(text, Loader=DefinitionLoader)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for key, index in _PATH_PART.findall(path):
        if node is None:
            break
        if key and isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if found is None:
                break
            line = next(k for k, v in node.value if v is found).start_mark.line + 1
            node = found
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def parse_definition(
    text: str,
) -> tuple[definition_pb2.AutomationDefinition | None, list[Violation]]:
    """The definition in YAML text, or the reasons it cannot be read (with lines)."""
    try:
        data = yaml.load(text, Loader=DefinitionLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return None, [("yaml", f"not valid YAML: {exc.problem}", mark.line + 1 if mark else None)]
    except yaml.YAMLError as exc:
        return None, [("yaml", f"not valid YAML: {exc}", None)]
    if not isinstance(data, dict):
        return None, [("yaml", "must be a mapping (the automation definition)", 1)]
    try:
        # Dates and times YAML might still produce become strings, as the CLI reads them.
        data = json.loads(json.dumps(data, default=str))
        definition = definition_pb2.AutomationDefinition()
        json_format.ParseDict(data, definition)
    except json_format.ParseError as exc:
        unknown = unknown_key(exc)
        if unknown is not None:
            path, problem = unknown[1]
            return None, [(path, problem, line_of(text, path))]
        return None, [("definition", str(exc), None)]
    except ValueError as exc:
        return None, [("definition", str(exc), None)]
    return definition, []


def with_lines(text: str, violations: list[tuple[str, str]]) -> list[Violation]:
    """Service violations (paths like `definition.plan[0].action`) placed on their lines."""
    out: list[Violation] = []
    for path, description in violations:
        local = path.removeprefix("definition.")
        out.append((local, description, line_of(text, local)))
    return out


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """Lines of a unified diff between two YAML texts."""
    return list(
        difflib.unified_diff(
            old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3
        )
    )


def zone(name: str) -> dt.tzinfo:
    """The IANA zone, UTC when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def local_time(ts: timestamp_pb2.Timestamp | None, tz: dt.tzinfo) -> dt.datetime | None:
    """A protobuf timestamp in the zone, None when unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=dt.UTC).astimezone(tz)


def fmt_time(ts: timestamp_pb2.Timestamp | None, tz: dt.tzinfo) -> str:
    """`2026-12-01 09:00:00 CET`, or an em dash when unset."""
    when = local_time(ts, tz)
    return when.strftime("%Y-%m-%d %H:%M:%S %Z") if when else "—"


def duration(start: Any, finish: Any) -> str:
    """`1.23s` between two timestamps, empty when either is unset."""
    if not start.seconds or not finish.seconds:
        return ""
    delta = finish.ToDatetime() - start.ToDatetime()
    return f"{delta.total_seconds():.2f}s"


def pretty_json(value: Any) -> str:
    """Indented JSON of a protobuf Value/Struct (or plain data)."""
    if hasattr(value, "DESCRIPTOR"):
        value = json_format.MessageToDict(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def label(enum_name: str, prefix: str) -> str:
    """`AUTOMATION_STATUS_ACTIVE` -> `active`."""
    return enum_name.removeprefix(prefix).lower()


def versions(before: int, after: int) -> str:
    """`2 → 3` for a change's versions, `— → 1` when created; empty when it has none."""
    if not before and not after:
        return ""
    return f"{before or '—'} → {after or '—'}"
