"""Exceptions raised by autom.schedule; transport-free so services can map them."""

from __future__ import annotations

from typing import Any


class ScheduleError(ValueError):
    """A schedule spec is invalid; `field` names the offending spec field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.message))


class TooManyFiresError(ValueError):
    """A time range holds more fire instants than the caller's limit allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} fire times in the requested range")
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit,))
