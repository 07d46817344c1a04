"""Masking secret values in logs, step records and error messages."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any


@functools.lru_cache(maxsize=64)
def _pattern(values: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so a secret containing another is masked whole.
    ordered = sorted(values, key=lambda value: (-len(value), value))
    return re.compile("|".join(map(re.escape, ordered)))


def redact(value: Any, secrets: Mapping[str, str], mask: str = "***") -> Any:
    """Copy of a JSON-like value with every occurrence of a secret value in its strings masked.

    Dict keys are kept as they are; empty and non-string secret values are ignored.
    """
    values = frozenset(v for v in secrets.values() if isinstance(v, str) and v)
    if not values:
        return value
    pattern = _pattern(values)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(lambda _: mask, item)
        if isinstance(item, dict):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list):
            return [walk(child) for child in item]
        if isinstance(item, tuple):
            return tuple(walk(child) for child in item)
        return item

    return walk(value)
