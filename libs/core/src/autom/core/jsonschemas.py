"""Validators for user-written JSON Schemas that never fetch a `$ref` from outside the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

# The bundled metaschemas and no `retrieve`: any other document is NoSuchResource, never a
# network or file read.
_OFFLINE: Registry[Any] = METASCHEMAS.combine(Registry())

# Keywords whose values are data, not subschemas: a `$ref` key inside them is just a key.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_REF_KEYWORDS = ("$ref", "$dynamicRef")


def offline_validator(schema: Any) -> Draft202012Validator:
    """A Draft 2020-12 validator whose references resolve only inside `schema` (and metaschemas).

    Validating with it raises `referencing.exceptions.Unresolvable` on an outside reference;
    call `unresolvable_refs` first to report those as field errors instead.
    """
    return Draft202012Validator(schema, registry=_OFFLINE)


def unresolvable_refs(schema: Any) -> list[tuple[list[str | int], str]]:
    """(path, message) for every `$ref`/`$dynamicRef` that does not resolve offline.

    The path ends with the keyword, e.g. `['properties', 'x', '$ref']`.
    """
    if not isinstance(schema, dict):
        return []
    root = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = _OFFLINE.resolver_with_root(root)
    return list(_walk(schema, resolver, []))


def _walk(node: Any, resolver: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(node, list):
        for i, child in enumerate(node):
            yield from _walk(child, resolver, [*path, i])
        return
    if not isinstance(node, dict):
        return
    if path and isinstance(node.get("$id"), str):
        resolver = resolver.in_subresource(
            Resource.from_contents(node, default_specification=DRAFT202012)
        )
    for keyword in _REF_KEYWORDS:
        ref = node.get(keyword)
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                yield (
                    [*path, keyword],
                    f"reference {ref[:200]!r} does not resolve inside the schema "
                    "(references to other documents are not fetched)",
                )
    for key, child in node.items():
        if key not in _DATA_KEYWORDS:
            yield from _walk(child, resolver, [*path, key])
