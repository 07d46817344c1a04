"""Definitions as text: the YAML 1.2-style loader and protobuf's unknown-key errors in words."""

from __future__ import annotations

import difflib
import re

import yaml
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2


class DefinitionLoader(yaml.SafeLoader):
    """YAML 1.2-style scalars: only true/false are booleans, no base-60 ints, no dates.

    A definition is full of values YAML 1.1 would silently mangle: `on: ...` keys, times
    like `8:30` (510), dates (datetime objects). They stay strings here.
    """


DefinitionLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DefinitionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
DefinitionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)

_UNKNOWN_FIELD = re.compile(
    r'Message type "(?P<type>[\w.]+)" has no field named "(?P<key>[^"]+)" at "(?P<at>[^"]*)"'
)


def unknown_key(exc: json_format.ParseError) -> tuple[str, tuple[str, str]] | None:
    """(sentence, (field path, problem)) for protobuf's "has no field named", else None."""
    m = _UNKNOWN_FIELD.search(str(exc))
    if m is None:
        return None
    where = m["at"].removeprefix("AutomationDefinition").lstrip(".")
    path = f"{where}.{m['key']}" if where else m["key"]
    place = f"in {where}" if where else "at the top level"
    sentence = f"unknown key {m['key']!r} {place}"
    try:
        message = definition_pb2.DESCRIPTOR.pool.FindMessageTypeByName(m["type"])
    except KeyError:
        return sentence, (path, "unknown key")
    valid = [f.name for f in message.fields]
    close = difflib.get_close_matches(m["key"], valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return sentence, (path, f"unknown key; {hint}valid keys: {', '.join(valid)}")
