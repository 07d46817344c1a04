"""Resource caps applied to every render."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps for one `render_value` / `evaluate_condition` call.

    Sizes count characters (for native values: characters of their JSON text).
    `max_output_size` caps everything one call produces; `max_work_size` caps each string,
    list or serialisation built while rendering (and each value a text filter reads); a
    built list or dict may hold `max_work_size // 8` items;
    `max_range` caps `range()` length and count-like filter arguments; `max_steps` caps
    loop iterations plus calls (macros, methods, globals); `timeout` is a wall-clock
    deadline in seconds, checked at every step, filter, concatenation and output chunk.
    """

    max_output_size: int = 1 << 20
    max_work_size: int = 8 << 20
    max_range: int = 10_000
    max_steps: int = 100_000
    timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_output_size", "max_work_size", "max_range", "max_steps", "timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_work_size < self.max_output_size:
            raise ValueError("max_work_size must be at least max_output_size")
