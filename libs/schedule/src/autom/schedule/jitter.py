"""Deterministic per-fire jitter so replicas agree on the delayed instant."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

_ZERO = timedelta(0)


def jitter_offset(
    schedule_id: str,
    nominal: datetime,
    max_jitter: timedelta,
    next_nominal: datetime | None,
) -> timedelta:
    """Offset uniform in [0, min(max_jitter, next_nominal - nominal)), derived from sha256.

    The same schedule and nominal instant always give the same offset, whatever zone
    `nominal` is expressed in; the bound keeps a jittered fire before the next nominal one.
    """
    if nominal.tzinfo is None or nominal.utcoffset() is None:
        raise ValueError("nominal must be a timezone-aware datetime")
    bound = max_jitter
    if next_nominal is not None:
        if next_nominal.tzinfo is None or next_nominal.utcoffset() is None:
            raise ValueError("next_nominal must be a timezone-aware datetime")
        bound = min(bound, next_nominal - nominal)
    bound_us = bound // timedelta(microseconds=1)
    if bound_us <= 0:
        return _ZERO
    key = f"{schedule_id}\n{nominal.astimezone(UTC).isoformat()}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    # Scaling a 64-bit draw instead of taking a modulo keeps the result unbiased enough
    # (error < bound / 2**64) and strictly below the bound.
    return timedelta(microseconds=(draw * bound_us) >> 64)
