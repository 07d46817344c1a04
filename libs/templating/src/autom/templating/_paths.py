"""Field paths like `plan[2].params.headers.Authorization`, and finding templates in values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def child_path(base: str, key: Any) -> str:
    """`base.key` for a key (`base["odd key"]` if not identifier-like), `base[i]` for an index."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{base}[{key}]"
    text = str(key)
    if _PLAIN_KEY.match(text):
        return f"{base}.{text}" if base else text
    return f"{base}[{json.dumps(text, ensure_ascii=False)}]"


def is_template(text: str) -> bool:
    """True when a string contains `{{` or `{%`; other strings are never rendered."""
    return "{{" in text or "{%" in text


def iter_templates(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield `(path, text)` for every template string inside a nested JSON-like value."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from iter_templates(child, child_path(path, key))
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield from iter_templates(child, child_path(path, index))
