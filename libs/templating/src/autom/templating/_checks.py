"""Per-render state and the size checks run before operations that can amplify."""

from __future__ import annotations

import re
import types
from string import Formatter
from typing import Any

from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
)

from autom.templating._run import LimitExceeded, NotAllowed
from autom.templating._values import max_items, measure

# Bits an integer built by `*` or `**` may have (Python prints at most ~14k bits anyway).
MAX_INT_BITS = 1 << 16

# Methods of builtin values a template may call; everything else on them is refused.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find",
        "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier",
        "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join",
        "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace",
        "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines",
        "startswith", "strip", "swapcase", "title", "upper", "zfill",
    }
)  # fmt: skip
_ALLOWED_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index"})),
    (int, frozenset({"bit_length"})),
    (float, frozenset({"is_integer"})),
)
_BUILTIN_VALUE_TYPES = (str, dict, list, tuple, int, float)
# Frame and code handles jinja's sandbox refuses on generators and coroutines.
_UNSAFE_ATTRIBUTES = frozenset(
    UNSAFE_GENERATOR_ATTRIBUTES | UNSAFE_COROUTINE_ATTRIBUTES | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
# Methods of builtin values no template may call (the runtime refuses them in check_method_call).
_REFUSED_METHODS = frozenset(
    name
    for kind in _BUILTIN_VALUE_TYPES
    for name in dir(kind)
    if not name.startswith("_")
    and callable(getattr(kind, name))
    and not any(name in allowed for _, allowed in _ALLOWED_METHODS)
)

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def check_count(value: Any, limit: int, what: str) -> None:
    """Refuse a width or count argument above `limit`."""
    if isinstance(value, int) and value > limit:
        raise LimitExceeded(f"{what} {value} exceeds the limit of {limit}")


def check_length(length: int, limit: int, what: str) -> None:
    """Refuse a result length computed before building it."""
    if length > limit:
        raise LimitExceeded(f"{what} exceeds the size limit of {limit} characters")


def check_percent_format(fmt: str, limit: int) -> None:
    """Refuse `%` formats with `*` or huge widths and precisions."""
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise NotAllowed("'*' widths in % formatting are not allowed")
            if number:
                width = int(number) if len(number) <= 30 else limit + 1
                check_count(width, limit, "% format width")


def check_format_string(fmt: str, limit: int) -> None:
    """Refuse `str.format` specs with nested fields or huge widths."""
    for _, _, spec, _ in Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:
            raise NotAllowed("nested fields in a format spec are not allowed")
        for number in _DIGITS.findall(spec):
            width = int(number) if len(number) <= 30 else limit + 1
            check_count(width, limit, "format width")


def check_multiply(left: Any, right: Any, limit: int) -> None:
    """Bound sequence repetition by size and integer products by bits."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
            if times > 0 and isinstance(seq, str | bytes):
                check_length(len(seq) * times, limit, "repeated sequence")
            elif times > 0:
                check_items(len(seq) * times, limit, "repeated sequence")
                check_length(measure(seq, limit, "'*'") * times, limit, "repeated sequence")
            return
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        raise LimitExceeded(f"integer product exceeds {MAX_INT_BITS} bits")


def check_power(base: Any, exponent: Any) -> None:
    """Bound integer powers by bits."""
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise LimitExceeded(f"integer power exceeds {MAX_INT_BITS} bits")


def check_items(count: int, limit: int, what: str) -> None:
    """Refuse a list item count computed before building it."""
    if count > max_items(limit):
        raise LimitExceeded(f"{what} exceeds the limit of {max_items(limit)} items")


def check_add(left: Any, right: Any, limit: int) -> None:
    """Bound string and list concatenation with `+`."""
    if isinstance(left, str) and isinstance(right, str):
        check_length(len(left) + len(right), limit, "'+' result")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        check_items(len(left) + len(right), limit, "'+' result")


def check_str_method(
    owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> tuple[Any, ...]:
    """Refuse calls whose result would be larger than `limit`; returns the args to use."""
    if name in {"center", "ljust", "rjust", "zfill"} and args:
        check_count(args[0], limit, f"{name}() width")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            check_length(len(owner) + owner.count("\t") * tabsize, limit, "expandtabs() result")
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        if isinstance(old, str) and isinstance(new, str):
            hits = owner.count(old) if old else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            grow = hits * max(0, len(new) - len(old))
            check_length(len(owner) + grow, limit, "replace() result")
    elif name == "join" and args:
        items = list(args[0])
        total = len(owner) * max(0, len(items) - 1)
        total += sum(len(item) for item in items if isinstance(item, str))
        check_length(total, limit, "join() result")
        return (items, *args[1:])
    return args


def check_method_call(
    obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> tuple[Any, ...]:
    """Allow only listed methods of builtin values, with their size checks."""
    if not isinstance(obj, types.BuiltinMethodType | types.MethodType):
        return args
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, _BUILTIN_VALUE_TYPES):
        return args
    name = getattr(obj, "__name__", "")
    allowed = next(names for kind, names in _ALLOWED_METHODS if isinstance(owner, kind))
    if name not in allowed:
        raise NotAllowed(f"calling {type(owner).__name__}.{name}() is not allowed")
    if isinstance(owner, str):
        return check_str_method(owner, name, args, kwargs, limit)
    return args


def refused_attribute(name: str) -> str | None:
    """Why `.name` is refused before any render (the sandbox refuses it at run time), or None.

    Dunder names reach Python internals on every value; a JSON key spelled like one is read
    with `['name']`, which stays allowed.
    """
    if name.startswith("__") or name in _UNSAFE_ATTRIBUTES:
        return f"{name!r} is an internal attribute (for a JSON key, write ['{name}'])"
    return None


def refused_method(name: str) -> str | None:
    """Why calling `.name(...)` is refused before any render, or None."""
    if name in _REFUSED_METHODS:
        return f"calling .{name}() is not allowed"
    return None
