"""Model JSON -> AutomationDefinition with shape violations instead of exceptions."""

from __future__ import annotations

from typing import Any

from autom.drafter.convert import definition_to_json, json_to_definition
from autom.drafter.domain.examples import EXAMPLES


def _fields(raw: Any) -> set[str]:
    pb, violations = json_to_definition(raw)
    assert pb is None
    return {v.field for v in violations}


def test_examples_round_trip_through_proto() -> None:
    for ex in EXAMPLES:
        raw = ex.reply.get("definition")
        if raw is None:
            continue
        pb, violations = json_to_definition(raw)
        assert pb is not None, violations
        assert definition_to_json(pb) == raw


def test_unknown_fields_are_reported_with_paths() -> None:
    raw = {
        "name": "x",
        "colour": "blue",
        "plan": [{"id": "a", "action": "log", "params": {}, "retries": 3}],
        "execution": {"retry": {"max_retries": 1, "backof": "linear"}},
    }
    assert _fields(raw) == {"colour", "plan[0].retries", "execution.retry.backof"}


def test_wrong_types_are_reported_with_paths() -> None:
    raw = {
        "name": 5,
        "triggers": {"type": "schedule"},
        "plan": [
            {"id": "a", "action": "log", "params": "text"},
            {"id": "b", "action": "log", "retry": {"max_retries": "two", "jitter": "yes"}},
            "step",
        ],
        "execution": {"budget_usd": "1$"},
        "metadata": {"tags": "x", "created_from_nl": 1},
    }
    assert _fields(raw) == {
        "name",
        "triggers",
        "plan[0].params",
        "plan[1].retry.max_retries",
        "plan[1].retry.jitter",
        "plan[2]",
        "execution.budget_usd",
        "metadata.tags",
        "metadata.created_from_nl",
    }


def test_not_an_object() -> None:
    assert _fields(["x"]) == {"definition"}


def test_integral_floats_and_nulls_are_accepted() -> None:
    raw = {
        "name": "x",
        "description": None,
        "plan": [{"id": "a", "action": "log", "retry": {"max_retries": 2.0}}],
    }
    pb, violations = json_to_definition(raw)
    assert pb is not None and not violations
    assert pb.plan[0].retry.max_retries == 2
