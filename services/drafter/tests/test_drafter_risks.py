"""Approval-card warnings of agent steps with tools."""

from __future__ import annotations

from autom.drafter.domain.risks import risk_warnings


def test_the_card_lists_the_tools_an_agent_step_may_call() -> None:
    definition = {
        "name": "x",
        "plan": [
            {
                "id": "triage",
                "action": "agent_task",
                "params": {
                    "prompt": "p",
                    "tools": ["http_request", "automation:file-issue"],
                    "max_tool_calls": 4,
                },
            },
            {"id": "plain", "action": "agent_task", "params": {"prompt": "p"}},
        ],
    }
    [warning] = risk_warnings(definition)
    assert "'triage'" in warning and "up to 4 calls" in warning
    assert warning.endswith("http_request, automation:file-issue.")
