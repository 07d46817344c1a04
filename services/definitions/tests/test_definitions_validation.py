"""Validation of the envelope: every rule reports the right field path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from autom.core.registry import build_catalog
from autom.definitions.convert import definition_to_json, definition_to_proto
from autom.definitions.domain.model import Definition
from autom.definitions.domain.validation import validate_definition

CATALOG = build_catalog(plugins=False)


def violations_of(raw: dict[str, Any]) -> dict[str, str]:
    return {v.field: v.description for v in validate_definition(raw, CATALOG)[1]}


def test_realistic_definition_is_valid(digest: dict[str, Any]) -> None:
    definition, violations = validate_definition(digest, CATALOG)
    assert violations == []
    assert isinstance(definition, Definition)


def test_proto_json_round_trip_is_lossless(digest: dict[str, Any]) -> None:
    raw = digest
    proto = definition_to_proto(raw)
    assert definition_to_json(proto) == raw
    assert definition_to_proto(definition_to_json(proto)).SerializeToString(
        deterministic=True
    ) == proto.SerializeToString(deterministic=True)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("empty name", _set(["name"], ""), "name"),
    ("bad cron", _set(["triggers", 0, "config", "cron"], "61 * * * *"), "triggers[0].config.cron"),
    (
        "impossible cron",
        _set(["triggers", 0, "config", "cron"], "0 0 31 2 *"),
        "triggers[0].config.cron",
    ),
    (
        "unknown zone",
        _set(["triggers", 0, "config", "timezone"], "Mars/Olympus"),
        "triggers[0].config.timezone",
    ),
    ("unknown action", _set(["plan", 0, "action"], "teleport"), "plan[0].action"),
    (
        "params failing the action schema",
        _set(["plan", 0, "params", "method"], "FETCH"),
        "plan[0].params.method",
    ),
    (
        "unknown param",
        _set(["plan", 0, "params", "verb"], "GET"),
        "plan[0].params",
    ),
    ("duplicate step ids", _set(["plan", 2, "id"], "fetch"), "plan[2].id"),
    ("bad step id", _set(["plan", 0, "id"], "Fetch-1"), "plan[0].id"),
    (
        "forward steps reference",
        _set(["plan", 0, "params", "url"], "https://x.test/{{ steps.post.output.status }}"),
        "plan[0].params.url",
    ),
    (
        "broken template",
        _set(["plan", 1, "params", "prompt"], "Summarise {{ steps.fetch.output.json | }}"),
        "plan[1].params.prompt",
    ),
    ("broken when", _set(["plan", 1, "when"], "steps.fetch.output.status =="), "plan[1].when"),
    (
        "invalid inputs schema",
        _set(["inputs", "schema", "type"], "objekt"),
        "inputs.schema.type",
    ),
    (
        "static inputs failing the schema",
        _set(["triggers", 0, "inputs"], {"repo": 42}),
        "triggers[0].inputs.repo",
    ),
    ("unknown top-level key", _set(["colour"], "blue"), "colour"),
    ("unknown trigger type", _set(["triggers", 0, "type"], "pigeon"), "triggers[0].type"),
    (
        "unknown trigger config key",
        _set(["triggers", 0, "config", "tz"], "UTC"),
        "triggers[0].config",
    ),
    ("bad duration", _set(["execution", "timeout"], "soon"), "execution.timeout"),
    ("bad concurrency", _set(["execution", "concurrency"], "sometimes"), "execution.concurrency"),
    ("empty plan", _set(["plan"], []), "plan"),
    (
        "unknown tool",
        _set(["plan", 1, "params", "tools"], ["http_request", "shell"]),
        "plan[1].params.tools[1]",
    ),
    (
        "templated tool name",
        _set(["plan", 1, "params", "tools"], ["{{ inputs.tool }}"]),
        "plan[1].params.tools[0]",
    ),
    (
        # Whether the server is registered is checked on save (test_definitions_mcp).
        "malformed MCP tool name",
        _set(["plan", 1, "params", "tools"], ["mcp:github"]),
        "plan[1].params.tools[0]",
    ),
    (
        "bad automation tool name",
        _set(["plan", 1, "params", "tools"], ["automation:Not A Name"]),
        "plan[1].params.tools[0]",
    ),
    (
        "max_tool_calls out of range",
        _set(["plan", 1, "params", "max_tool_calls"], 0),
        "plan[1].params.max_tool_calls",
    ),
]


def test_agent_tools_from_the_catalog_are_valid(digest: dict[str, Any]) -> None:
    digest["plan"][1]["params"]["tools"] = [
        "http_request",
        "transform",
        "emit_event",
        "automation:file-issue",
    ]
    digest["plan"][1]["params"]["max_tool_calls"] = 5
    assert violations_of(digest) == {}
    assert {c.id for c in CATALOG.capabilities.all()} >= {
        "http_request",
        "transform",
        "emit_event",
    }


@pytest.mark.parametrize(("label", "mutate", "field"), CASES, ids=[c[0] for c in CASES])
def test_invalid_definition_names_the_field(
    label: str, mutate: Callable[[dict[str, Any]], None], field: str, digest: dict[str, Any]
) -> None:
    raw = digest
    mutate(raw)
    found = violations_of(raw)
    assert field in found, f"{label}: expected a violation at {field}, got {found}"
    assert all(found.values()), "every violation has a human sentence"


def test_oversize_definition_is_rejected(digest: dict[str, Any]) -> None:
    raw = digest
    raw["description"] = "x" * (300 * 1024)
    assert "definition" in violations_of(raw)


def test_too_many_steps_are_rejected(digest: dict[str, Any]) -> None:
    raw = digest
    raw["plan"] = [
        {"id": f"s{i}", "action": "log", "params": {"message": "hi"}} for i in range(101)
    ]
    assert "plan" in violations_of(raw)


def test_all_violations_are_reported_at_once(digest: dict[str, Any]) -> None:
    raw = digest
    raw["triggers"][0]["config"]["timezone"] = "Nowhere/Land"
    raw["plan"][0]["action"] = "teleport"
    raw["plan"][2]["id"] = "fetch"
    assert {"triggers[0].config.timezone", "plan[0].action", "plan[2].id"} <= set(
        violations_of(raw)
    )


def test_a_bad_cron_does_not_hide_a_bad_time_zone(digest: dict[str, Any]) -> None:
    digest["triggers"][0]["config"] |= {"cron": "61 * * * *", "timezone": "Nowhere/Land"}
    digest["triggers"][0]["config"]["on_missing"] = "explode"
    assert {
        "triggers[0].config.cron",
        "triggers[0].config.timezone",
        "triggers[0].config.on_missing",
    } <= set(violations_of(digest))


def test_a_structural_error_does_not_hide_the_rest(digest: dict[str, Any]) -> None:
    """A step id or name that fails parsing still lets every other part be checked."""
    digest["name"] = "Bad Name"
    digest["plan"][2]["id"] = "Post!"
    digest["plan"][1]["action"] = "teleport"
    digest["plan"][0]["params"]["url"] = "{{ inputs.repo "
    digest["triggers"][0]["config"]["timezone"] = "Nowhere/Land"
    digest["execution"]["timeout"] = "soon"
    found = violations_of(digest)
    assert {
        "name",
        "plan[2].id",
        "plan[1].action",
        "plan[0].params.url",
        "triggers[0].config.timezone",
        "execution.timeout",
    } <= set(found), found
    # Steps that parsed still resolve their references: none is invented.
    assert not any("does not name" in text for text in found.values()), found


def test_templated_param_is_not_checked_against_static_type(digest: dict[str, Any]) -> None:
    raw = digest
    raw["plan"][1]["params"]["temperature"] = "{{ inputs.temperature }}"
    assert violations_of(raw) == {}


def test_on_failure_steps_may_reference_plan_steps(digest: dict[str, Any]) -> None:
    raw = digest
    raw["execution"]["on_failure"][0]["params"]["message"] = "failed: {{ steps.fetch.status }}"
    assert violations_of(raw) == {}


def test_six_field_cron_and_macros_are_accepted(digest: dict[str, Any]) -> None:
    for cron in ("*/2 * * * * *", "@daily", "@hourly"):
        raw = copy.deepcopy(digest)
        raw["triggers"][0]["config"]["cron"] = cron
        assert violations_of(raw) == {}, cron


def test_trigger_overlap_is_refused_and_points_to_execution_concurrency(
    digest: dict[str, Any],
) -> None:
    digest["triggers"][0]["config"]["overlap"] = "skip"
    found = violations_of(digest)
    assert list(found) == ["triggers[0].config.overlap"]
    assert "execution.concurrency" in found["triggers[0].config.overlap"]
    schedule = CATALOG.triggers.get("schedule")
    assert schedule is not None and "overlap" not in schedule.config_schema["properties"]
