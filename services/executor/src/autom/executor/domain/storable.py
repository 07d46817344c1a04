"""What PostgreSQL jsonb can store: no NUL characters, no NaN/Infinity, JSON types only."""

from __future__ import annotations

import math
from typing import Any


def unstorable(value: Any, path: str = "$") -> str | None:
    """Where `value` cannot be stored as jsonb (a JSON path and why), or None when it can."""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, not a JSON number"
    if isinstance(value, str):
        return f"{path} contains a NUL character (\\u0000)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a non-string key {key!r}"
            if "\x00" in key:
                return f"{path} has a key containing a NUL character (\\u0000)"
            found = unstorable(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    return f"{path} is a {type(value).__name__}, not a JSON value"


def scrub(value: Any) -> Any:
    """A storable copy for records kept only to be read (params, errors): NUL -> U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return repr(value)
