"""Proto conversion of stored automations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from autom.definitions.convert import automation_to_proto


def _row(version: int, definition: dict[str, object]) -> SimpleNamespace:
    now = datetime.now(UTC)
    return SimpleNamespace(
        id=str(uuid.uuid4()),
        workspace_id="default",
        name="n",
        status="active",
        version=version,
        definition=definition,
        pause_note="",
        created_by="user:a",
        created_at=now,
        updated_at=now,
        revision=1,
    )


def test_a_versions_parsed_definition_is_kept_and_never_shared_with_a_response() -> None:
    plan = [{"id": "a", "action": "wait", "params": {"duration": "1s"}}]
    row = _row(2, {"name": "n", "plan": plan})
    first = automation_to_proto(row)
    # A caller changing its response must not change what the next caller gets.
    first.definition.plan[0].id = "changed"
    again = automation_to_proto(row)
    assert again.definition.plan[0].id == "a"
    # Another version of the same automation is its own entry.
    older = automation_to_proto(row, {"name": "n", "plan": plan[:0]}, version=1)
    assert (older.version, len(older.definition.plan)) == (2, 0)
    assert len(automation_to_proto(row).definition.plan) == 1
