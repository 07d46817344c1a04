"""Drafts, revisions, usage and previews as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from autom.core.errors import Violation


class DraftStatus(StrEnum):
    """A draft's (and a revision's) state."""

    PENDING = "pending"
    NEEDS_CLARIFICATION = "needs_clarification"
    OUT_OF_SCOPE = "out_of_scope"
    INVALID = "invalid"
    FAILED = "failed"
    APPROVED = "approved"
    REJECTED = "rejected"


FINAL = frozenset({DraftStatus.APPROVED, DraftStatus.REJECTED})


@dataclass(frozen=True)
class Usage:
    """LLM usage of one revision."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> Usage:
        """This usage plus one more call."""
        return Usage(
            self.prompt_tokens + prompt_tokens,
            self.completion_tokens + completion_tokens,
            self.cost_usd + cost_usd,
            self.calls + 1,
        )


@dataclass(frozen=True)
class TriggerPreview:
    """A trigger's English description and next fire instants."""

    index: int
    description: str
    next_fire_times: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class StepPreview:
    """`step id -> action` (and its `when`)."""

    id: str
    action: str
    when: str = ""


@dataclass(frozen=True)
class Preview:
    """What the user reads before approving."""

    triggers: list[TriggerPreview]
    steps: list[StepPreview]
    json: str
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Storable form."""
        return {
            "triggers": [
                {
                    "index": t.index,
                    "description": t.description,
                    "next_fire_times": [d.isoformat() for d in t.next_fire_times],
                }
                for t in self.triggers
            ],
            "steps": [{"id": s.id, "action": s.action, "when": s.when} for s in self.steps],
            "json": self.json,
            "changes": self.changes,
            "warnings": self.warnings,
        }

    @staticmethod
    def from_json(raw: dict[str, Any]) -> Preview:
        """Inverse of to_json."""
        return Preview(
            triggers=[
                TriggerPreview(
                    t["index"],
                    t["description"],
                    [datetime.fromisoformat(d) for d in t["next_fire_times"]],
                )
                for t in raw.get("triggers", [])
            ],
            steps=[StepPreview(s["id"], s["action"], s.get("when", "")) for s in raw["steps"]],
            json=raw.get("json", ""),
            changes=list(raw.get("changes", [])),
            warnings=list(raw.get("warnings", [])),
        )


@dataclass(frozen=True)
class Turn:
    """The outcome of one drafting turn (the model calls behind one revision)."""

    status: DraftStatus
    messages: list[dict[str, str]]
    usage: Usage
    definition: dict[str, Any] | None = None
    violations: list[Violation] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    message: str = ""
    error_type: str = ""
    error_message: str = ""
    # Defaults the drafter filled in, shown on the approval card.
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revision:
    """One stored turn of the drafting conversation."""

    number: int
    instruction: str
    status: DraftStatus
    definition: dict[str, Any] | None
    violations: list[Violation]
    questions: list[str]
    error_type: str
    error_message: str
    message: str
    messages: list[dict[str, str]]
    preview: Preview | None
    usage: Usage
    model: str
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Draft:
    """A drafting conversation and its latest outcome."""

    id: str
    workspace_id: str
    status: DraftStatus
    intent: str
    timezone: str
    request_id: str | None
    base_automation_id: str
    base_version: int
    base_definition: dict[str, Any] | None
    automation_id: str
    automation_version: int
    reject_reason: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    revisions: list[Revision]

    @property
    def latest(self) -> Revision | None:
        """The current revision."""
        return self.revisions[-1] if self.revisions else None

    def conversation(self) -> list[dict[str, str]]:
        """Every earlier turn's messages, in order, for the next model call."""
        out: list[dict[str, str]] = []
        for rev in self.revisions:
            out.extend(rev.messages)
        return out
