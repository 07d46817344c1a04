"""Event triggers: which events of a workspace a trigger answers to (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SOURCE_STATUS = ("failed",)


@dataclass(frozen=True)
class EventTrigger:
    """An event trigger of a definition."""

    trigger_id: str
    config: dict[str, Any]


def event_triggers(definition: Mapping[str, Any]) -> list[EventTrigger]:
    """The event triggers of a definition, ids defaulted `<type>_<index>`."""
    return [
        EventTrigger(str(t.get("id") or f"event_{i}"), dict(t.get("config") or {}))
        for i, t in enumerate(definition.get("triggers") or [])
        if isinstance(t, dict) and t.get("type") == "event"
    ]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def matches(
    config: Mapping[str, Any],
    *,
    subject: str,
    source_names: Collection[str] = (),
    source_status: str = "",
) -> bool:
    """True when the event is one the trigger answers to (its filter is applied later).

    `source_names` are the id and name of the automation whose run finished (empty for an
    emitted event); a trigger with both `subject` and `source` needs both to match.
    """
    source = config.get("source")
    if isinstance(source, Mapping):
        statuses = source.get("status") or DEFAULT_SOURCE_STATUS
        if not source_status or source_status not in statuses:
            return False
        if str(source.get("automation", "")) not in source_names:
            return False
    pattern = config.get("subject")
    if pattern:
        return subject_matches(str(pattern), subject)
    return isinstance(source, Mapping)
