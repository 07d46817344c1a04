"""Size cap of recorded step values (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Default cap of a recorded step's params and output (JSON bytes).
MAX_OUTPUT_BYTES = 256 * 1024
# Default cap of a recorded tool call's result (what the model is shown is capped the same).
MAX_TOOL_RESULT_BYTES = 16 * 1024
# Characters of the original JSON text a truncation marker keeps, to show what it was.
PREVIEW_CHARS = 1024


@dataclass(frozen=True)
class Capped:
    """A value as it is recorded: itself, or a marker when its JSON exceeded the cap."""

    value: Any
    truncated: bool = False
    # The size of the original JSON (UTF-8 bytes) when it was truncated.
    size_bytes: int | None = None


def json_size(value: Any) -> tuple[str, int]:
    """The compact JSON text of a value and its size in UTF-8 bytes."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text, len(text.encode())


def cap(value: Any, limit: int) -> Capped:
    """`value` when its compact JSON fits in `limit` bytes, else a marker object.

    The marker replaces the whole value (never a cut JSON document a reader could mistake for
    the real one): {"truncated": true, "size_bytes": N, "limit_bytes": L, "preview": "..."}.
    """
    if value is None or isinstance(value, bool | int | float):
        return Capped(value)
    text, size = json_size(value)
    if size <= limit:
        return Capped(value)
    marker = {
        "truncated": True,
        "size_bytes": size,
        "limit_bytes": limit,
        "preview": text[: min(PREVIEW_CHARS, max(0, limit // 4))],
    }
    return Capped(marker, truncated=True, size_bytes=size)
