"""Parsing of human duration strings such as "90s", "1h30m" or "500ms"."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?",
    re.ASCII,
)
_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_HINT = "expected whole numbers with units d, h, m, s, ms, largest first, e.g. 90s, 1h30m, 500ms"


def parse_duration(text: str) -> timedelta:
    """Parse "2d", "1h30m", "15m", "90s", "500ms", "0s"; raise ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"duration is empty; {_HINT}")
    if stripped.startswith("-"):
        raise ValueError(f"duration {text!r} is negative; durations must be >= 0")
    match = _DURATION.fullmatch(stripped)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {text!r}; {_HINT}")
    try:
        return sum(
            (int(value) * _UNITS[unit] for unit, value in match.groupdict().items() if value),
            timedelta(0),
        )
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None
