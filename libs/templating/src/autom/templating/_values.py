"""Conversions from template values to text and JSON-like data, each bounded by a size."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import Undefined
from jinja2.runtime import LoopContext

from autom.templating._run import LimitExceeded, Unrenderable, check_time

# Case-insensitive, after stripping: rendered strings a `when` treats as false.
FALSY_STRINGS = frozenset({"", "false", "0", "no", "off", "none", "null"})
_END = object()
# Characters of `max_work_size` one item of a built list or dict counts for.
ITEM_WEIGHT = 8
# Integers printed or returned may have at most this many bits (about 4200 digits).
MAX_RENDERED_INT_BITS = 14_000
# Long walks check the render deadline every this many items.
_CHECK_EVERY = 1 << 14


def type_name(value: Any) -> str:
    """The short type name used in error messages."""
    return type(value).__name__


def is_opaque(value: Any) -> bool:
    """True for values that are not data: functions, classes, macros, helper objects."""
    if isinstance(value, str | int | float | None | Undefined):
        return False
    return isinstance(value, LoopContext) or not isinstance(value, Iterable)


def max_items(limit: int) -> int:
    """Items a built list or dict may hold: each costs a filter or sort far more than a char."""
    return limit // ITEM_WEIGHT


def check_size(value: Any, limit: int, what: str) -> None:
    """Shallow O(1) check of a freshly built string or container."""
    if isinstance(value, str | bytes) and len(value) > limit:
        raise LimitExceeded(f"{what} exceeds the size limit of {limit} characters")
    if isinstance(value, list | tuple | dict) and len(value) > max_items(limit):
        raise LimitExceeded(f"{what} exceeds the limit of {max_items(limit)} items")


def check_int(value: int) -> None:
    """Refuse integers too long to print (Python's own cap is 4300 digits)."""
    if value.bit_length() > MAX_RENDERED_INT_BITS:
        raise Unrenderable("integer is too large to render")


def measure(value: Any, limit: int, what: str) -> int:
    """Approximate JSON size of `value`; raises past `limit` or on a non-data leaf."""
    total = 0
    stack = [value]
    visited = 0
    while stack:
        item = stack.pop()
        visited += 1
        if not visited % _CHECK_EVERY:
            check_time()
        if isinstance(item, str):
            total += len(item) + 2
        elif item is None or isinstance(item, bool | float):
            total += 8
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            if total <= limit:
                stack.extend(item)
        elif is_opaque(item):
            raise Unrenderable(f"{what} cannot use a value of type {type_name(item)!r}")
        else:
            total += 1  # lazy iterables and Undefined: measured when materialised
        if total > limit:
            raise LimitExceeded(f"{what} exceeds the size limit of {limit} characters")
    return total


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises here with its message
        return None
    if is_opaque(value):
        raise Unrenderable(f"cannot render a value of type {type_name(value)!r}")
    return list(value)  # generators, dict views, ranges


def dumps(value: Any, limit: int, *, indent: int | None = None) -> str:
    """Native JSON text of `value`, built incrementally and abandoned past `limit`."""
    encoder = json.JSONEncoder(
        ensure_ascii=False, allow_nan=False, indent=indent, default=_json_default
    )
    parts: list[str] = []
    total = 0
    for chunk in encoder.iterencode(value):
        if not len(parts) % _CHECK_EVERY:
            check_time()
        total += len(chunk)
        if total > limit:
            raise LimitExceeded(f"JSON text exceeds the size limit of {limit} characters")
        parts.append(chunk)
    return "".join(parts)


def to_text(value: Any, limit: int) -> str:
    """How a value is written into a string template: scalars as Jinja does, containers as JSON."""
    if isinstance(value, str):
        check_size(value, limit, "string")
        return value
    if isinstance(value, int):
        check_int(value)
    if value is None or isinstance(value, int | float):
        return str(value)
    if isinstance(value, Undefined):
        return str(value)  # StrictUndefined raises; the plain kind renders as ""
    if is_opaque(value):
        raise Unrenderable(f"cannot render a value of type {type_name(value)!r}")
    return dumps(value, limit)


def to_native(value: Any, limit: int) -> tuple[Any, int]:
    """Deep copy of a template result as JSON-like data, and its approximate JSON size."""
    size = 0

    def add(n: int) -> None:
        nonlocal size
        size += n
        if size > limit:
            raise LimitExceeded(f"rendered value exceeds the size limit of {limit} characters")

    def convert(item: Any) -> Any:
        if item is None or isinstance(item, bool):
            add(5)
            return item
        if isinstance(item, str):
            add(len(item) + 2)
            return str(item)
        if isinstance(item, int):
            check_int(item)
            add(item.bit_length() // 3 + 2)
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                raise Unrenderable(f"cannot render the non-finite number {item}")
            add(24)
            return item
        if isinstance(item, dict):
            add(2)
            out: dict[str, Any] = {}
            for key, child in item.items():
                if not isinstance(key, str):
                    raise Unrenderable(f"object keys must be strings, not {type_name(key)!r}")
                add(len(key) + 4)
                out[str(key)] = convert(child)
            return out
        if isinstance(item, Undefined):
            str(item)
            return None
        if is_opaque(item):
            raise Unrenderable(f"cannot render a value of type {type_name(item)!r}")
        add(2)
        result = []
        for child in item:
            add(1)
            result.append(convert(child))
        return result

    return convert(value), size


def truthy(value: Any) -> bool:
    """Truth of a `when` result; strings like "false", "0" or "no" count as false."""
    if isinstance(value, Undefined):
        str(value)
        return False
    if isinstance(value, str):
        return value.strip().lower() not in FALSY_STRINGS
    if value is None or isinstance(value, int | float | list | tuple | dict):
        return bool(value)
    if isinstance(value, Iterator):
        return next(value, _END) is not _END
    if is_opaque(value):
        raise Unrenderable(f"cannot use a value of type {type_name(value)!r} as a condition")
    return bool(value)
