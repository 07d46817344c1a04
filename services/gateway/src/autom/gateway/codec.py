"""HTTP request -> protobuf request, protobuf -> canonical proto3 JSON.

Conversion itself is google.protobuf.json_format. Before it, a strict check walks the JSON
against the descriptor so that the gateway accepts exactly what /openapi.json documents:
unknown fields, nulls, wrong types, out-of-range numbers and undefined enum values are
400s with a field path (json_format alone would accept e.g. undefined enum numbers, or
raise exceptions that are not ParseError).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from autom.core.errors import Violation
from autom.gateway.routing import Route

MAX_DEPTH = 64

INT32_RANGE = (-(2**31), 2**31 - 1)
UINT32_RANGE = (0, 2**32 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
UINT64_RANGE = (0, 2**64 - 1)

F = FieldDescriptor
# upb and pure-Python descriptors are different classes; both are walked the same way.
Descriptor = Any
RANGES: dict[int, tuple[int, int]] = {
    F.TYPE_INT32: INT32_RANGE,
    F.TYPE_SINT32: INT32_RANGE,
    F.TYPE_SFIXED32: INT32_RANGE,
    F.TYPE_UINT32: UINT32_RANGE,
    F.TYPE_FIXED32: UINT32_RANGE,
    F.TYPE_INT64: INT64_RANGE,
    F.TYPE_SINT64: INT64_RANGE,
    F.TYPE_SFIXED64: INT64_RANGE,
    F.TYPE_UINT64: UINT64_RANGE,
    F.TYPE_FIXED64: UINT64_RANGE,
}
INT64_TYPES = frozenset(
    {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
)
FLOAT_TYPES = frozenset({F.TYPE_DOUBLE, F.TYPE_FLOAT})
# 64-bit integers travel as decimal strings; 18 digits always fit, so the documented pattern
# never admits an out-of-range value.
INT64_STRING = re.compile(r"-?[0-9]{1,18}")
UINT64_STRING = re.compile(r"[0-9]{1,18}")
SPECIAL_FLOATS = ("NaN", "Infinity", "-Infinity")
FLOAT_STRING = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
INT_STRING = re.compile(r"-?[0-9]+")
BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
DURATION = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?s")
FLOAT32_MAX = 3.4028234663852886e38

WRAPPERS = frozenset(
    f"google.protobuf.{n}Value"
    for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
STRING_WKT = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)


class RequestError(Exception):
    """The HTTP request cannot become the RPC's request message."""

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = list(violations)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _json_number_ok(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 1.7976931348623157e308
    return isinstance(value, float) and math.isfinite(value)


class _Checker:
    """Walks decoded JSON against a descriptor and collects violations."""

    def __init__(self, ranges: Mapping[str, tuple[int, int]]) -> None:
        self.violations: list[Violation] = []
        self.ranges = ranges

    def bad(self, path: str, description: str) -> None:
        self.violations.append(Violation(path or "body", description))

    def message(self, value: Any, desc: Descriptor, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.bad(path, "is nested too deeply")
            return
        name = desc.full_name
        if name in WRAPPERS:
            self.single(value, desc.fields_by_name["value"], path, depth)
            return
        if name in STRING_WKT:
            self.string_wkt(value, name, path)
            return
        if name == "google.protobuf.Struct":
            if not isinstance(value, dict):
                self.bad(path, "must be a JSON object")
            else:
                self.any_json(value, path, depth)
            return
        if name == "google.protobuf.ListValue":
            if not isinstance(value, list):
                self.bad(path, "must be a JSON array")
            else:
                self.any_json(value, path, depth)
            return
        if name == "google.protobuf.Value":
            self.any_json(value, path, depth)
            return
        if name == "google.protobuf.Any":
            if not isinstance(value, dict) or not isinstance(value.get("@type"), str):
                self.bad(path, 'must be an object with an "@type"')
            return
        if not isinstance(value, dict):
            self.bad(path, "must be a JSON object")
            return
        seen: dict[str, str] = {}
        oneofs: dict[str, str] = {}
        for key, item in value.items():
            field = desc.fields_by_name.get(key) or _by_json_name(desc).get(key)
            child = _join(path, key)
            if field is None:
                self.bad(child, "is not a known field")
                continue
            if field.name in seen:
                self.bad(child, f"is given twice (also as {seen[field.name]!r})")
                continue
            seen[field.name] = key
            oneof = field.containing_oneof
            if oneof is not None:
                if oneof.name in oneofs:
                    self.bad(child, f"conflicts with {oneofs[oneof.name]!r} (same oneof)")
                    continue
                oneofs[oneof.name] = key
            self.field(item, field, child, depth + 1)

    def field(self, value: Any, field: Any, path: str, depth: int) -> None:
        if _is_map(field):
            if not isinstance(value, dict):
                self.bad(path, "must be a JSON object")
                return
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                child = f"{path}[{json.dumps(key)}]"
                self.map_key(key, key_field, child)
                self.single(item, value_field, child, depth)
            return
        if field.is_repeated:
            if not isinstance(value, list):
                self.bad(path, "must be a JSON array")
                return
            for i, item in enumerate(value):
                self.single(item, field, f"{path}[{i}]", depth)
            return
        self.single(value, field, path, depth)

    def map_key(self, key: str, field: Any, path: str) -> None:
        if field.type == F.TYPE_BOOL:
            if key not in ("true", "false"):
                self.bad(path, 'map key must be "true" or "false"')
        elif field.type in RANGES:
            lo, hi = RANGES[field.type]
            if not INT_STRING.fullmatch(key) or not lo <= int(key) <= hi:
                self.bad(path, f"map key must be an integer in [{lo}, {hi}]")

    def single(self, value: Any, field: Any, path: str, depth: int) -> None:
        if field.message_type is not None:
            if value is None and field.message_type.full_name == "google.protobuf.Value":
                return
            if value is None:
                self.bad(path, "must not be null (omit the field instead)")
                return
            self.message(value, field.message_type, path, depth)
            return
        if value is None:
            if field.enum_type is not None and field.enum_type.full_name == (
                "google.protobuf.NullValue"
            ):
                return
            self.bad(path, "must not be null (omit the field instead)")
            return
        kind = field.type
        if kind == F.TYPE_STRING:
            if not isinstance(value, str):
                self.bad(path, "must be a string")
            elif _has_surrogate(value):
                self.bad(path, "must be valid Unicode")
        elif kind == F.TYPE_BYTES:
            if not isinstance(value, str) or not BASE64.fullmatch(value):
                self.bad(path, "must be a base64 string")
        elif kind == F.TYPE_BOOL:
            if not isinstance(value, bool):
                self.bad(path, "must be true or false")
        elif kind == F.TYPE_ENUM:
            self.enum(value, field, path)
        elif kind in FLOAT_TYPES:
            if isinstance(value, str):
                if value not in SPECIAL_FLOATS:
                    self.bad(path, 'must be a number, "NaN", "Infinity" or "-Infinity"')
            elif not _json_number_ok(value):
                self.bad(path, "must be a finite number")
            elif kind == F.TYPE_FLOAT and abs(float(value)) > FLOAT32_MAX:
                self.bad(path, "is out of range for a 32-bit float")
        elif kind in RANGES:
            self.integer(value, field, path)

    def integer(self, value: Any, field: Any, path: str) -> None:
        kind = field.type
        lo, hi = self.ranges.get(field.full_name, RANGES[kind])
        if isinstance(value, str) and kind in INT64_TYPES:
            pattern = UINT64_STRING if lo == 0 else INT64_STRING
            if not pattern.fullmatch(value):
                self.bad(path, "must be an integer or a string of at most 18 digits")
            elif not lo <= int(value) <= hi:
                self.bad(path, f"must be in [{lo}, {hi}]")
            return
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(path, "must be an integer")
        elif not lo <= value <= hi:
            self.bad(path, f"must be in [{lo}, {hi}]")

    def enum(self, value: Any, field: Any, path: str) -> None:
        enum = field.enum_type
        if isinstance(value, str):
            if value not in enum.values_by_name:
                self.bad(path, f"must be one of {', '.join(enum.values_by_name)}")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value not in enum.values_by_number:
                self.bad(path, f"{value} is not a value of {enum.name}")
        else:
            self.bad(path, "must be an enum value name")

    def string_wkt(self, value: Any, name: str, path: str) -> None:
        if not isinstance(value, str):
            self.bad(path, "must be a string")
            return
        if name == "google.protobuf.Timestamp":
            try:
                timestamp_pb2.Timestamp().FromJsonString(value)
            except (ValueError, TypeError):
                self.bad(path, "must be an RFC 3339 timestamp, e.g. 2025-01-31T09:00:00Z")
        elif name == "google.protobuf.Duration":
            try:
                if not DURATION.fullmatch(value):
                    raise ValueError(value)
                duration_pb2.Duration().FromJsonString(value)
            except (ValueError, TypeError):
                self.bad(path, 'must be a duration in seconds with an "s" suffix, e.g. "1.5s"')

    def any_json(self, value: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.bad(path, "is nested too deeply")
        elif isinstance(value, dict):
            for key, item in value.items():
                self.any_json(item, _join(path, str(key)), depth + 1)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.any_json(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, str):
            if _has_surrogate(value):
                self.bad(path, "must be valid Unicode")
        elif isinstance(value, bool) or value is None:
            return
        elif not _json_number_ok(value):
            self.bad(path, "must be a finite number")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


_JSON_NAMES: dict[str, dict[str, Any]] = {}


def _by_json_name(desc: Descriptor) -> dict[str, Any]:
    cached = _JSON_NAMES.get(desc.full_name)
    if cached is None:
        cached = {f.json_name: f for f in desc.fields}
        _JSON_NAMES[desc.full_name] = cached
    return cached


def check_message_json(
    value: Any,
    desc: Descriptor,
    path: str = "",
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> list[Violation]:
    """Violations of `value` as the proto3 JSON of `desc` (empty when it is acceptable)."""
    checker = _Checker(ranges or {})
    checker.message(value, desc, path, 0)
    return checker.violations


def check_field_json(
    value: Any, field: Any, path: str, ranges: Mapping[str, tuple[int, int]] | None = None
) -> list[Violation]:
    """Violations of `value` as the JSON of one field."""
    checker = _Checker(ranges or {})
    checker.field(value, field, path, 0)
    return checker.violations


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(body: bytes) -> Any:
    """Strict JSON (no NaN/Infinity literals, UTF-8)."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RequestError("request body is not UTF-8") from exc
    except RecursionError as exc:
        raise RequestError("request body is nested too deeply") from exc
    except ValueError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc


# ---- path and query values (always strings) ----------------------------------------------


def resolve_path(desc: Descriptor, dotted: str) -> list[Any] | None:
    """Fields along a dotted path; each part may be the proto or the JSON name."""
    out: list[Any] = []
    current: Descriptor | None = desc
    for part in dotted.split("."):
        if current is None:
            return None
        field = current.fields_by_name.get(part) or _by_json_name(current).get(part)
        if field is None:
            return None
        out.append(field)
        is_message = field.message_type is not None and not _is_map(field)
        current = field.message_type if is_message and not field.is_repeated else None
    return out


def scalar_from_string(
    field: Any, raw: str, path: str, ranges: Mapping[str, tuple[int, int]] | None = None
) -> Any:
    """The JSON value json_format expects for one URL-supplied value; RequestError if bad."""

    def fail(description: str) -> RequestError:
        return RequestError(
            f"invalid value for {path}: {description}", [Violation(path, description)]
        )

    msg = field.message_type
    if msg is not None:
        if msg.full_name in WRAPPERS:
            return scalar_from_string(msg.fields_by_name["value"], raw, path, ranges)
        if msg.full_name in STRING_WKT:
            checker = _Checker({})
            checker.string_wkt(raw, msg.full_name, path)
            if checker.violations:
                raise fail(checker.violations[0].description)
            return raw
        raise fail("a message cannot be set from the URL; use dotted sub-fields")
    kind = field.type
    if kind == F.TYPE_STRING:
        return raw
    if kind == F.TYPE_BYTES:
        try:
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError) as exc:
            raise fail("must be base64") from exc
        return raw
    if kind == F.TYPE_BOOL:
        if raw not in ("true", "false"):
            raise fail('must be "true" or "false"')
        return raw == "true"
    if kind == F.TYPE_ENUM:
        enum = field.enum_type
        if raw in enum.values_by_name:
            return raw
        if INT_STRING.fullmatch(raw) and int(raw) in enum.values_by_number:
            return int(raw)
        raise fail(f"must be one of {', '.join(enum.values_by_name)}")
    if kind in FLOAT_TYPES:
        if raw in SPECIAL_FLOATS:
            return raw
        if not FLOAT_STRING.fullmatch(raw) or not math.isfinite(float(raw)):
            raise fail("must be a number")
        return float(raw)
    if kind in RANGES:
        lo, hi = (ranges or {}).get(field.full_name, RANGES[kind])
        if not INT_STRING.fullmatch(raw) or not lo <= int(raw) <= hi:
            raise fail(f"must be an integer in [{lo}, {hi}]")
        return int(raw)
    raise fail("unsupported field type")


def _set_nested(target: dict[str, Any], fields: Sequence[Any], value: Any) -> None:
    for field in fields[:-1]:
        target = target.setdefault(field.name, {})
    leaf = fields[-1]
    if leaf.is_repeated:
        target.setdefault(leaf.name, []).append(value)
    else:
        target[leaf.name] = value


def _parse(js: Any, message: Message, path: str) -> None:
    try:
        json_format.ParseDict(js, message)
    except Exception as exc:
        # Anything json_format trips on is the caller's input (the checks ran first).
        raise RequestError(
            f"invalid request: {exc}", [Violation(path or "body", str(exc))]
        ) from exc


def decode_request(
    route: Route,
    body: bytes,
    path_params: dict[str, str],
    query: Iterable[tuple[str, str]],
    ranges: Mapping[str, tuple[int, int]] | None = None,
) -> Message:
    """Build the RPC request from the body, the path variables and the query string.

    `ranges` bounds integer fields beyond their type (field full name -> (min, max)).
    """
    ranges = ranges or {}
    request = route.request_cls()
    desc = request.DESCRIPTOR
    body_rule = route.binding.body
    bound: set[str] = set()

    if body_rule:
        stripped = body.strip()
        if stripped:
            value = load_json(stripped)
            if body_rule == "*":
                violations = check_message_json(value, desc, "", ranges)
                if violations:
                    raise RequestError("invalid request body", violations)
                _parse(value, request, "")
            else:
                field = desc.fields_by_name[body_rule]
                violations = check_field_json(value, field, field.json_name, ranges)
                if violations:
                    raise RequestError("invalid request body", violations)
                _parse({field.name: value}, request, field.json_name)
        if body_rule != "*":
            bound.add(body_rule)

    # Path variables win over the body (as in grpc-gateway and Envoy).
    overrides: dict[str, Any] = {}
    for dotted, raw in path_params.items():
        fields = resolve_path(desc, dotted)
        assert fields is not None  # routes are checked against descriptors at start
        _set_nested(overrides, fields, scalar_from_string(fields[-1], raw, dotted, ranges))
        bound.add(fields[0].name)

    grouped: dict[str, list[str]] = {}
    for key, raw in query:
        grouped.setdefault(key, []).append(raw)
    for key, values in grouped.items():
        fields = resolve_path(desc, key)
        if fields is None or body_rule == "*":
            raise RequestError(
                f"unknown query parameter {key!r}", [Violation(key, "is not a known parameter")]
            )
        if fields[0].name in bound or ".".join(f.name for f in fields) in path_params:
            raise RequestError(
                f"query parameter {key!r} is bound by the path or the body",
                [Violation(key, "is bound by the path or the body")],
            )
        leaf = fields[-1]
        if any(f.is_repeated for f in fields[:-1]) or _is_map(leaf):
            raise RequestError(
                f"query parameter {key!r} cannot be set from the URL",
                [Violation(key, "cannot be set from the URL")],
            )
        if not leaf.is_repeated and len(values) > 1:
            raise RequestError(
                f"query parameter {key!r} is given more than once",
                [Violation(key, "is given more than once")],
            )
        for raw in values:
            _set_nested(overrides, fields, scalar_from_string(leaf, raw, key, ranges))

    if overrides:
        # ParseDict overwrites singular fields, so path values replace body values.
        _parse(overrides, request, "")
    return request


def serialize(request: Message) -> bytes:
    """Wire bytes of the request; a message protobuf cannot encode is the caller's fault."""
    try:
        return request.SerializeToString()
    except Exception as exc:
        raise RequestError(f"invalid request: {exc}") from exc


def integral(value: Any) -> Any:
    """Integral floats as ints (`42`, not Python's `42.0`), as other proto3 JSON printers do."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def to_json(message: Message) -> dict[str, Any]:
    """Canonical proto3 JSON: lowerCamelCase, enums by name, int64 as strings, defaults shown."""
    result: dict[str, Any] = integral(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    )
    return result


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
