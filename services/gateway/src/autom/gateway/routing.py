"""google.api.http path templates and the router built from every annotated RPC.

Template grammar (google/api/http.proto):
    Template = "/" Segments [ Verb ] ;  Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;  Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;
Matching runs on the raw (still percent-encoded) path so that an encoded `/` or `:` inside a
value never splits a segment or a verb.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

HTTP_KINDS = ("get", "put", "post", "delete", "patch")


class TemplateError(ValueError):
    """A path template that does not follow the google.api.http grammar."""


@dataclass(frozen=True)
class Variable:
    """A `{field.path=segments}` capture; `segments` is ("*",) when no pattern is given."""

    field_path: tuple[str, ...]
    segments: tuple[str, ...]

    @property
    def multi_segment(self) -> bool:
        """True when the capture may span several path segments."""
        return len(self.segments) > 1 or "**" in self.segments


@dataclass(frozen=True)
class PathTemplate:
    """A parsed template: literal, wildcard and variable segments plus an optional verb."""

    source: str
    segments: tuple[str | Variable, ...]
    verb: str | None
    regex: re.Pattern[str]

    @property
    def variables(self) -> list[Variable]:
        """The variables in order."""
        return [s for s in self.segments if isinstance(s, Variable)]

    @property
    def literal_count(self) -> int:
        """How many literal segments; more literals means a more specific template."""
        return sum(1 for s in self.segments if isinstance(s, str) and s not in ("*", "**"))

    def openapi_path(self) -> str:
        """The OpenAPI form: `{field.path}` per variable, wildcards as-is, then `:verb`."""
        parts = [
            "{" + ".".join(s.field_path) + "}" if isinstance(s, Variable) else s
            for s in self.segments
        ]
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb else "")

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> decoded value, or None when the path does not match."""
        m = self.regex.fullmatch(raw_path)
        if m is None:
            return None
        out: dict[str, str] = {}
        for i, var in enumerate(self.variables):
            value = m.group(f"v{i}")
            if var.multi_segment:
                # As grpc-gateway: keep an encoded `/` visible inside multi-segment values.
                out[".".join(var.field_path)] = "/".join(
                    unquote(s, errors="strict").replace("/", "%2F") for s in value.split("/")
                )
            else:
                out[".".join(var.field_path)] = unquote(value, errors="strict")
        return out


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return r"[^/]+"
    if segment == "**":
        return r".*"
    return re.escape(segment)


def parse_template(source: str) -> PathTemplate:
    """Parse a google.api.http path template."""
    if not source.startswith("/"):
        raise TemplateError(f"template {source!r} must start with '/'")
    body = source[1:]
    # The verb is a ':' outside braces after the last segment.
    depth = 0
    verb: str | None = None
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ":" and depth == 0:
            body, verb = body[:i], body[i + 1 :]
            if not verb or "/" in verb:
                raise TemplateError(f"template {source!r} has an invalid verb")
            break
    segments: list[str | Variable] = []
    i = 0
    while i <= len(body):
        if i < len(body) and body[i] == "{":
            end = body.find("}", i)
            if end < 0:
                raise TemplateError(f"template {source!r} has an unclosed variable")
            inner = body[i + 1 : end]
            name, _, pattern = inner.partition("=")
            if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
                raise TemplateError(f"template {source!r} has an invalid field path {name!r}")
            sub = tuple(pattern.split("/")) if pattern else ("*",)
            if any(not s for s in sub):
                raise TemplateError(f"template {source!r} has an empty segment")
            segments.append(Variable(tuple(name.split(".")), sub))
            i = end + 1
            if i < len(body) and body[i] != "/":
                raise TemplateError(f"template {source!r}: a variable must fill its segments")
            i += 1
            continue
        end = body.find("/", i)
        end = len(body) if end < 0 else end
        literal = body[i:end]
        if not literal or "{" in literal or "}" in literal:
            raise TemplateError(f"template {source!r} has an empty or malformed segment")
        segments.append(literal)
        i = end + 1
    parts: list[str] = []
    var_index = 0
    for seg in segments:
        if isinstance(seg, Variable):
            inner_re = "/".join(_segment_regex(s) for s in seg.segments)
            parts.append(f"(?P<v{var_index}>{inner_re})")
            var_index += 1
        else:
            parts.append(_segment_regex(seg))
    regex = re.compile("/" + "/".join(parts))
    return PathTemplate(source=source, segments=tuple(segments), verb=verb, regex=regex)


@dataclass(frozen=True)
class Binding:
    """One HTTP binding of an RPC: verb, template and how the body maps to the request."""

    http_method: str
    template: PathTemplate
    body: str
    response_body: str


@dataclass
class Route:
    """One HTTP endpoint backed by one RPC."""

    service_key: str
    method: MethodDescriptor
    binding: Binding
    request_cls: type[Message]
    response_cls: type[Message]
    protected: bool
    # Filled in by the upstream pool when channels exist.
    call: Any = field(default=None, repr=False)

    @property
    def rpc_path(self) -> str:
        """The gRPC method path, e.g. `/pkg.Service/Method`."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        """True for server-streaming RPCs (served as NDJSON)."""
        return bool(self.method.server_streaming)

    @property
    def path_fields(self) -> list[tuple[str, ...]]:
        """Field paths bound by the URL."""
        return [v.field_path for v in self.binding.template.variables]

    @property
    def operation_id(self) -> str:
        """`Service_Method`, plus a suffix for additional bindings."""
        return f"{self.method.containing_service.name}_{self.method.name}"


def _bindings(rule: http_pb2.HttpRule) -> Iterable[Binding]:
    kind = rule.WhichOneof("pattern")
    if kind is not None:
        if kind == "custom":
            method, path = rule.custom.kind.upper(), rule.custom.path
        else:
            method, path = kind.upper(), getattr(rule, kind)
        yield Binding(method, parse_template(path), rule.body, rule.response_body)
    for extra in rule.additional_bindings:
        yield from _bindings(extra)


def _resolve_field(descriptor: Any, path: Sequence[str]) -> FieldDescriptor:
    current = descriptor
    found: FieldDescriptor | None = None
    for i, part in enumerate(path):
        found = current.fields_by_name.get(part)
        if found is None:
            raise TemplateError(f"{descriptor.full_name} has no field {'.'.join(path)}")
        if i < len(path) - 1:
            if found.message_type is None or found.is_repeated:
                raise TemplateError(f"{'.'.join(path)} does not name a singular message path")
            current = found.message_type
    assert found is not None
    return found


def routes_from_files(
    files: Iterable[tuple[str, FileDescriptor]], protected: Any = None
) -> list[Route]:
    """One route per http binding of every method of every service in the files.

    `protected(rpc_path)` says whether a method needs a bearer token (default: all do).
    """
    out: list[Route] = []
    for service_key, file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                for binding in _bindings(rule):
                    for var in binding.template.variables:
                        leaf = _resolve_field(method.input_type, var.field_path)
                        if leaf.is_repeated or leaf.message_type is not None:
                            raise TemplateError(
                                f"{method.full_name}: path field {'.'.join(var.field_path)} "
                                "must be a singular scalar"
                            )
                    if binding.body not in ("", "*"):
                        _resolve_field(method.input_type, [binding.body])
                    route = Route(
                        service_key=service_key,
                        method=method,
                        binding=binding,
                        request_cls=GetMessageClass(method.input_type),
                        response_cls=GetMessageClass(method.output_type),
                        protected=True,
                    )
                    if protected is not None:
                        route.protected = bool(protected(route.rpc_path))
                    out.append(route)
    return out


@dataclass(frozen=True)
class Match:
    """A route and the decoded values of its path variables."""

    route: Route
    path_params: dict[str, str]


class MethodNotAllowed(Exception):
    """The path exists but not for this HTTP method."""

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = sorted(set(allowed))


class Router:
    """Matches (method, raw path) to a route the way grpc-gateway does, verbs included."""

    def __init__(self, routes: Sequence[Route]) -> None:
        # Most specific first: more literal segments, then fewer variables.
        self.routes = sorted(
            routes,
            key=lambda r: (
                -r.binding.template.literal_count,
                len(r.binding.template.variables),
            ),
        )

    def _candidates(self, raw_path: str) -> list[tuple[Route, dict[str, str]]]:
        last = raw_path.rsplit("/", 1)[-1]
        if ":" in last:
            # A literal ':' in the last segment introduces a verb when some template has it;
            # a value that merely contains ':' matches the verb-less templates below (and a
            # client can always send it as %3A).
            stem, _, verb = raw_path.rpartition(":")
            with_verb = []
            for route in self.routes:
                if route.binding.template.verb == verb:
                    params = route.binding.template.match(stem)
                    if params is not None:
                        with_verb.append((route, params))
            if with_verb:
                return with_verb
        out = []
        for route in self.routes:
            if route.binding.template.verb is None:
                params = route.binding.template.match(raw_path)
                if params is not None:
                    out.append((route, params))
        return out

    def match(self, http_method: str, raw_path: str) -> Match | None:
        """The matching route, None when no template matches; MethodNotAllowed when only
        other methods match. UnicodeDecodeError propagates for malformed encodings."""
        allowed: list[str] = []
        for route, params in self._candidates(raw_path):
            if route.binding.http_method == http_method:
                return Match(route, params)
            allowed.append(route.binding.http_method)
        if allowed:
            raise MethodNotAllowed(allowed)
        return None
