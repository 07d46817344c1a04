"""agent_task against a scripted OpenAI-compatible server on loopback (litellm is real)."""

from __future__ import annotations

import json
from typing import Any

import pytest

FakeLLM = Any

Harness = Any


def plan(*steps: dict[str, Any], **execution: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": "a", "plan": list(steps)}
    if execution:
        definition["execution"] = execution
    return definition


async def test_agent_task_returns_text_and_usage(agent_harness: Harness, llm: FakeLLM) -> None:
    llm.answers = ["Hello {{ 7 * 7 }}"]
    row = await agent_harness.run(
        plan(
            {
                "id": "ask",
                "action": "agent_task",
                "params": {
                    "prompt": "Say hi to {{ inputs.who }}",
                    "system": "be brief",
                    "temperature": 0.2,
                },
            },
            {
                "id": "echo",
                "action": "transform",
                "params": {"output": "{{ steps.ask.output.text }}"},
            },
        ),
        {"who": "ann"},
    )
    assert row.status == "succeeded", row.steps
    ask = row.steps[0]
    assert ask["output"]["text"] == "Hello {{ 7 * 7 }}"
    assert ask["output"]["usage"]["total_tokens"] == 15
    assert ask["usage"]["total_tokens"] == 15
    assert row.steps[1]["output"] == "Hello {{ 7 * 7 }}"  # LLM text is data
    sent = llm.requests[0]
    assert sent["model"] == "test-model"
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][1]["content"] == "Say hi to ann"


async def test_output_schema_is_enforced_with_one_repair_round(
    agent_harness: Harness, llm: FakeLLM
) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    llm.answers = ["not json at all", '```json\n{"n": 3}\n```']
    row = await agent_harness.run(
        plan(
            {
                "id": "ask",
                "action": "agent_task",
                "params": {"prompt": "count", "output_schema": schema},
            }
        )
    )
    assert row.status == "succeeded", row.steps
    assert row.steps[0]["output"]["json"] == {"n": 3}
    assert len(llm.requests) == 2
    assert "invalid" in llm.requests[1]["messages"][-1]["content"]

    llm.answers = ['{"n": "x"}', '{"m": 1}']
    row = await agent_harness.run(
        plan(
            {
                "id": "ask",
                "action": "agent_task",
                "params": {"prompt": "count", "output_schema": schema},
            },
            retry={"max_retries": 2, "initial_delay": "1ms"},
        )
    )
    assert row.status == "failed"
    assert row.steps[0]["error"]["type"] == "OutputSchemaError"
    assert row.steps[0]["attempts"] == 1


async def test_budget_cap_fails_the_run_with_budget_exceeded(
    agent_harness: Harness, llm: FakeLLM
) -> None:
    row = await agent_harness.run(
        plan(
            {"id": "ask", "action": "agent_task", "params": {"prompt": "x"}},
            {"id": "ask2", "action": "agent_task", "params": {"prompt": "y"}},
            budget_usd=0,
        )
    )
    assert row.status == "failed"
    assert row.error["type"] == "budget_exceeded"
    assert llm.requests == []


async def test_llm_server_errors_are_classified(agent_harness: Harness, llm: FakeLLM) -> None:
    row = await agent_harness.run(
        plan(
            {
                "id": "ask",
                "action": "agent_task",
                "params": {"prompt": "x", "model": "openai/test-model", "tools": ["nonexistent"]},
            }
        )
    )
    assert row.status == "failed"
    assert row.steps[0]["error"]["type"] == "ValidationError"
    json.dumps(row.steps)


async def test_spend_is_recorded_and_a_run_over_budget_stops(
    agent_harness: Harness, llm: FakeLLM
) -> None:
    row = await agent_harness.run(
        plan(
            {
                "id": "ask",
                "action": "agent_task",
                "params": {"prompt": "x", "model": "openai/gpt-4o-mini"},
            },
            {
                "id": "more",
                "action": "agent_task",
                "params": {"prompt": "y", "model": "openai/gpt-4o-mini"},
            },
            # The first call (at least its prompt, ~$0.000001) fits; its spend ($0.0000045)
            # leaves too little for the second, which is stopped before it goes out.
            budget_usd=0.000005,
        )
    )
    ask = row.steps[0]
    assert ask["cost_usd"] > 0
    assert row.cost_usd == pytest.approx(ask["cost_usd"])
    assert row.status == "failed" and row.error["type"] == "budget_exceeded"
    assert len(llm.requests) == 1
