"""evaluate_condition: bare expressions and templates, and what counts as false."""

from __future__ import annotations

from typing import Any

import pytest

from autom.templating import TemplateError, evaluate_condition, parse_condition

CONTEXT: dict[str, Any] = {
    "steps": {
        "fetch": {"status": "succeeded", "output": {"status": 200, "items": [], "text": "false"}},
        "skipped": {"status": "skipped", "output": None},
    },
    "inputs": {"flag": True, "zero": 0, "name": "widgets", "empty": {}},
    "secrets": {"TOKEN": "s3cr3t-token"},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("steps.fetch.output.status == 200", True),
        ("steps.fetch.output.status != 200", False),
        ("{{ steps.fetch.output.status == 200 }}", True),
        ("{{ steps.fetch.output.status == 404 }}", False),
        ("steps.skipped.status == 'skipped'", True),
        ("steps.skipped.output", False),
        ("steps.skipped.output is none", True),
        ("inputs.flag", True),
        ("inputs.flag and inputs.zero", False),
        ("inputs.zero", False),
        ("inputs.empty", False),
        ("steps.fetch.output.items", False),
        ("steps.fetch.output.items | select", False),
        ("[1, 2] | select('odd')", True),
        ("inputs.name", True),
        ("steps.fetch.output.text", False),
        ("'0'", False),
        ("'no'", False),
        ("' False '", False),
        ("'off'", False),
        ("'none'", False),
        ("''", False),
        ("'yes'", True),
        ("{{ inputs.name }}", True),
        ("{{ steps.fetch.output.text }}", False),
        ("{% if inputs.flag %}yes{% endif %}", True),
        ("{% if inputs.zero %}yes{% endif %}", False),
        ("{{ inputs.flag }} ", True),
        ("{{ inputs.zero }}", False),
        ("{{ 'x' if false }}", False),
        ("steps.fetch is defined and steps.nope is not defined", True),
    ],
)
def test_condition_truthiness(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXT, path="plan[1].when") is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("steps.nope.output.status == 200", "'steps' has no attribute 'nope'"),
        ("{{ steps.nope.output }}", "'steps' has no attribute 'nope'"),
        ("steps.fetch.output ==", "syntax error at line 1: unexpected 'end of template'"),
        ("steps.fetch }}", "syntax error at line 1: chunk after expression"),
        ("range", "cannot use a value of type 'function' as a condition"),
        ("steps[secrets.TOKEN]", "'steps' has no attribute '***'"),
    ],
)
def test_condition_errors_carry_the_path(condition: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        evaluate_condition(condition, CONTEXT, path="plan[1].when")
    assert caught.value.path == "plan[1].when"
    assert caught.value.message == message


def test_parse_condition_accepts_expressions_and_templates() -> None:
    parse_condition("steps.fetch.output.status == 200")
    parse_condition("{{ steps.fetch.output.status == 200 }}")
    with pytest.raises(TemplateError) as caught:
        parse_condition("steps.fetch.output.status = 200", path="plan[1].when")
    assert caught.value.path == "plan[1].when"
    assert caught.value.message.startswith("syntax error at line 1")
