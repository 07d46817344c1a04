"""OpenAPI 3.1 document generated from the same routes and descriptors the gateway serves.

The schemas describe exactly what `codec` accepts and emits: lowerCamelCase properties,
no unknown properties, 64-bit integers as strings (numbers accepted), enums by name
(defined numbers accepted), Timestamps as RFC 3339 strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from autom.gateway.codec import (
    FLOAT32_MAX,
    FLOAT_TYPES,
    INT64_TYPES,
    RANGES,
    SPECIAL_FLOATS,
    STRING_WKT,
    WRAPPERS,
)
from autom.gateway.routing import Route

F = FieldDescriptor
# upb and pure-Python descriptors are different classes; both are read the same way.
Descriptor = Any
EnumDescriptor = Any
STATUS_REF = {"$ref": "#/components/schemas/google.rpc.Status"}
NDJSON = "application/x-ndjson"
SECURITY_SCHEME = "bearerAuth"

_STATUS_SCHEMAS: dict[str, Any] = {
    "google.rpc.Status": {
        "type": "object",
        "description": (
            "The error model of every failed call (google.rpc.Status): a gRPC code, a "
            "developer-facing message and typed details such as google.rpc.BadRequest "
            "(field violations) and google.rpc.ErrorInfo (a machine-readable reason)."
        ),
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The gRPC status code (google.rpc.Code).",
            },
            "message": {"type": "string", "description": "What went wrong, in English."},
            "details": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/google.protobuf.Any"},
                "description": "Typed details, each with an `@type`.",
            },
        },
        "required": ["code", "message"],
    },
    "google.protobuf.Any": {
        "type": "object",
        "description": "A typed detail: `@type` names the message, the other keys are its fields.",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
}


def _summary(text: str) -> str:
    first = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0]
    return first.rstrip(".;") if first else text


class SchemaBuilder:
    """Turns message and enum descriptors into JSON Schemas under components/schemas."""

    def __init__(
        self, comments: Mapping[str, str], ranges: Mapping[str, tuple[int, int]] | None = None
    ) -> None:
        self.comments = comments
        self.ranges = ranges or {}
        self.components: dict[str, Any] = dict(_STATUS_SCHEMAS)

    def _describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        text = self.comments.get(full_name)
        if text:
            schema["description"] = text
        return self.bounded(schema, full_name)

    def bounded(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        """Apply a documented integer range (see comments.documented_ranges)."""
        bounds = self.ranges.get(full_name)
        if bounds is not None and schema.get("type") == "integer":
            schema["minimum"], schema["maximum"] = bounds
        return schema

    def ref(self, desc: Descriptor) -> dict[str, Any]:
        """A $ref to the message's component, building it on first use."""
        name = desc.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages terminate here
            self.components[name] = self.message(desc)
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        """A $ref to the enum's component."""
        name = enum.full_name
        if name not in self.components:
            names = [v.name for v in enum.values]
            numbers = [v.number for v in enum.values]
            lines = [
                f"- `{v.name}`: {self.comments.get(f'{name}.{v.name}', '')}" for v in enum.values
            ]
            text = self.comments.get(name, "")
            schema: dict[str, Any] = {
                "type": ["string", "integer"],
                "enum": [*names, *numbers],
                "description": (
                    (text + "\n\n" if text else "")
                    + "\n".join(lines)
                    + "\n\nSent as the name; the number is accepted too."
                ),
            }
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def message(self, desc: Descriptor, exclude: Sequence[str] = ()) -> dict[str, Any]:
        """An object schema with one property per field (JSON names), closed to extras."""
        properties: dict[str, Any] = {}
        for field in desc.fields:
            if field.name in exclude:
                continue
            properties[field.json_name] = self._describe(
                self.field(field), f"{desc.full_name}.{field.name}"
            )
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        return self._describe(schema, desc.full_name)

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        """Schema of a field: map, array or single value."""
        msg = field.message_type
        if msg is not None and msg.GetOptions().map_entry:
            key = msg.fields_by_name["key"]
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.single(msg.fields_by_name["value"]),
            }
            if key.type in RANGES:
                schema["propertyNames"] = {"pattern": "^-?[0-9]{1,9}$"}
            elif key.type == F.TYPE_BOOL:
                schema["propertyNames"] = {"enum": ["true", "false"]}
            return schema
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        """Schema of one value of the field's type."""
        msg = field.message_type
        if msg is not None:
            return self.message_value(msg)
        if field.enum_type is not None:
            if field.enum_type.full_name == "google.protobuf.NullValue":
                return {"type": "null"}
            return self.enum_ref(field.enum_type)
        return scalar_schema(field.type)

    def message_value(self, msg: Descriptor) -> dict[str, Any]:
        """Schema of a message value; well-known types get their JSON forms."""
        name = msg.full_name
        if name in WRAPPERS:
            return scalar_schema(msg.fields_by_name["value"].type)
        if name == "google.protobuf.Timestamp":
            return {"type": "string", "format": "date-time"}
        if name == "google.protobuf.Duration":
            return {"type": "string", "pattern": r"^-?[0-9]{1,12}(\.[0-9]{1,9})?s$"}
        if name == "google.protobuf.FieldMask":
            return {"type": "string"}
        if name == "google.protobuf.Struct":
            return {"type": "object"}
        if name == "google.protobuf.ListValue":
            return {"type": "array"}
        if name == "google.protobuf.Value":
            return {}
        if name == "google.protobuf.Any":
            return {"$ref": "#/components/schemas/google.protobuf.Any"}
        return self.ref(msg)


def scalar_schema(kind: int) -> dict[str, Any]:
    """Schema of a scalar proto type in proto3 JSON."""
    if kind == F.TYPE_STRING:
        return {"type": "string"}
    if kind == F.TYPE_BYTES:
        return {"type": "string", "format": "byte", "pattern": "^[A-Za-z0-9+/_-]*={0,2}$"}
    if kind == F.TYPE_BOOL:
        return {"type": "boolean"}
    if kind in FLOAT_TYPES:
        number: dict[str, Any] = {"type": "number"}
        if kind == F.TYPE_FLOAT:
            number.update(minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX)
        return {"anyOf": [number, {"type": "string", "enum": list(SPECIAL_FLOATS)}]}
    if kind in INT64_TYPES:
        lo, hi = RANGES[kind]
        return {
            "type": ["string", "integer"],
            "pattern": "^[0-9]{1,18}$" if lo == 0 else "^-?[0-9]{1,18}$",
            "minimum": lo,
            "maximum": hi,
            "description": "A 64-bit integer, sent as a decimal string.",
        }
    if kind in RANGES:
        lo, hi = RANGES[kind]
        fmt = {"format": "int32"} if lo < 0 else {}
        return {"type": "integer", **fmt, "minimum": lo, "maximum": hi}
    return {}


def _query_params(
    builder: SchemaBuilder,
    desc: Descriptor,
    exclude: set[str],
    prefix: str,
    depth: int,
    seen: frozenset[str],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for field in desc.fields:
        if not prefix and field.name in exclude:
            continue
        msg = field.message_type
        name = f"{prefix}{field.json_name}"
        if msg is not None and msg.GetOptions().map_entry:
            continue
        is_scalar_wkt = msg is not None and (
            msg.full_name in WRAPPERS or msg.full_name in STRING_WKT
        )
        if msg is not None and not is_scalar_wkt:
            # Nested messages flatten to dotted names, a few levels deep, never cycling.
            if field.is_repeated or msg.full_name.startswith("google.protobuf."):
                continue
            if depth >= 3 or msg.full_name in seen:
                continue
            out += _query_params(
                builder, msg, exclude, f"{name}.", depth + 1, seen | {msg.full_name}
            )
            continue
        schema = builder.single(field)
        if field.is_repeated:
            schema = {"type": "array", "items": schema}
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
        text = builder.comments.get(f"{desc.full_name}.{field.name}")
        if text:
            param["description"] = text
        builder.bounded(schema, f"{desc.full_name}.{field.name}")
        out.append(param)
    return out


def _operation(builder: SchemaBuilder, route: Route, operation_id: str) -> dict[str, Any]:
    method = route.method
    desc: Descriptor = method.input_type
    text = builder.comments.get(method.full_name, "")
    body_rule = route.binding.body
    path_top = {p[0] for p in route.path_fields}
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [method.containing_service.name],
        "summary": _summary(text) or method.name,
        "description": text,
        "x-grpc-method": route.rpc_path,
    }
    params: list[dict[str, Any]] = []
    for path in route.path_fields:
        fields = []
        current: Descriptor = desc
        for part in path:
            f = current.fields_by_name[part]
            fields.append(f)
            current = f.message_type
        leaf = fields[-1]
        schema = builder.single(leaf)
        if leaf.type == F.TYPE_STRING:
            schema = {"type": "string", "minLength": 1}
        param: dict[str, Any] = {
            "name": ".".join(path),
            "in": "path",
            "required": True,
            "schema": schema,
        }
        owner = leaf.containing_type.full_name
        comment = builder.comments.get(f"{owner}.{leaf.name}")
        if comment:
            param["description"] = comment
        params.append(param)
    if body_rule != "*":
        exclude = set(path_top) | ({body_rule} if body_rule else set())
        params += _query_params(builder, desc, exclude, "", 0, frozenset({desc.full_name}))
    if params:
        op["parameters"] = params
    if body_rule:
        if body_rule == "*":
            if path_top:
                body_schema = builder.message(desc, exclude=sorted(path_top))
            else:
                body_schema = builder.ref(desc)
        else:
            field = desc.fields_by_name[body_rule]
            body_schema = builder.field(field)
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body_schema}},
        }
    response_desc = method.output_type
    if route.binding.response_body:
        response_schema = builder.field(response_desc.fields_by_name[route.binding.response_body])
    else:
        response_schema = builder.ref(response_desc)
    ok_text = builder.comments.get(response_desc.full_name) or "OK"
    if route.streaming:
        ok: dict[str, Any] = {
            "description": (
                f"{ok_text}\n\nA stream of newline-delimited JSON (one message per line) "
                "until the RPC ends; an error after the first line arrives as a last line "
                '`{"error": <google.rpc.Status>}`.'
            ),
            "content": {NDJSON: {"schema": response_schema}},
        }
    else:
        ok = {"description": ok_text, "content": {"application/json": {"schema": response_schema}}}
    error = {"content": {"application/json": {"schema": STATUS_REF}}}
    responses: dict[str, Any] = {
        "200": ok,
        "400": {"description": "Invalid request (field violations in the details).", **error},
    }
    if route.protected:
        responses["401"] = {"description": "Missing, invalid or expired bearer token.", **error}
        responses["403"] = {"description": "The token's role lacks the permission.", **error}
    responses["404"] = {"description": "Not found (or in another workspace).", **error}
    responses["default"] = {"description": "Any other error, as a google.rpc.Status.", **error}
    op["responses"] = responses
    op["security"] = [{SECURITY_SCHEME: []}] if route.protected else []
    return op


INFO_DESCRIPTION = """\
The HTTP/JSON face of Autom's gRPC API, transcoded from the `google.api.http` annotations.

* **Auth**: `Authorization: Bearer <token>` on every operation (it is forwarded to the
  services; no other identity header is).
* **JSON**: the proto3 canonical mapping — lowerCamelCase names (proto names accepted on
  input), enums by name, 64-bit integers as strings, timestamps as RFC 3339 strings.
  Unknown fields are rejected.
* **Errors**: a `google.rpc.Status` body whose HTTP status follows the grpc-gateway mapping
  (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
  ALREADY_EXISTS/ABORTED 409, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503,
  DEADLINE_EXCEEDED 504, ...).
* **Deadlines**: `X-Autom-Timeout: 30s` (units `ms`, `s`, `m`, `h`) or `Request-Timeout:
  <seconds>`; default 30 s, streams 1 h.
* **Streams**: server-streaming RPCs answer `application/x-ndjson`, one message per line.
"""


def build_openapi(
    routes: Sequence[Route],
    comments: Mapping[str, str],
    *,
    ranges: Mapping[str, tuple[int, int]] | None = None,
    title: str = "Autom API",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the routes."""
    builder = SchemaBuilder(comments, ranges)
    paths: dict[str, dict[str, Any]] = {}
    used_ids: dict[str, int] = {}
    tags: dict[str, str] = {}
    ordered = sorted(routes, key=lambda r: (r.service_key, r.method.index))
    for route in ordered:
        service = route.method.containing_service
        tags.setdefault(service.name, comments.get(service.full_name, ""))
        base_id = route.operation_id
        n = used_ids.get(base_id, 0)
        used_ids[base_id] = n + 1
        operation_id = base_id if n == 0 else f"{base_id}_{n}"
        path = route.binding.template.openapi_path()
        paths.setdefault(path, {})[route.binding.http_method.lower()] = _operation(
            builder, route, operation_id
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "v1", "description": INFO_DESCRIPTION},
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(builder.components.items())),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A token from `autom tokens create` or the dev stack.",
                }
            },
        },
    }
