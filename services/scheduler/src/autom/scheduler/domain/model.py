"""The scheduler's view of an automation change, independent of where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class TriggerSpec:
    """One trigger of an automation as the scheduler needs it."""

    id: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AutomationChange:
    """An automation's state after a change (from an event or a resync)."""

    automation_id: str
    workspace_id: str
    version: int
    # Assigned by the definitions database on every change; the only order of changes.
    revision: int
    status: str
    deleted: bool
    created_by: str
    triggers: tuple[TriggerSpec, ...] = ()

    @property
    def active(self) -> bool:
        """True when its schedule triggers should fire."""
        return self.status == "active" and not self.deleted

    def schedule_triggers(self) -> list[TriggerSpec]:
        """Schedule triggers with their ids defaulted to `<type>_<index>`."""
        return [
            TriggerSpec(t.id or f"{t.type}_{i}", t.type, t.config, t.inputs)
            for i, t in enumerate(self.triggers)
            if t.type == "schedule"
        ]


def schedule_id(automation_id: str, trigger_id: str) -> str:
    """`<automation_id>:<trigger_id>`."""
    return f"{automation_id}:{trigger_id}"


def iso_utc(instant: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, e.g. 2026-11-22T09:00:00Z (microseconds only if set)."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def fire_id(schedule: str, nominal: datetime) -> str:
    """The fire key of a nominal instant: `<schedule_id>:<scheduled_for ISO-8601 UTC>`."""
    return f"{schedule}:{iso_utc(nominal)}"
