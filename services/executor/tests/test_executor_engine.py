"""The dispatch and step-engine contract, on real PostgreSQL with definitions in memory."""

from __future__ import annotations

import logging
from typing import Any

import pytest

Harness = Any


def steps_of(row: Any) -> dict[str, dict[str, Any]]:
    return {r["step_id"]: r for r in row.steps}


def plan(*steps: dict[str, Any], **execution: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": "t", "plan": list(steps)}
    if execution:
        definition["execution"] = execution
    return definition


async def test_transform_step_output_is_recorded_and_run_succeeds(harness: Harness) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "transform", "params": {"output": {"n": "{{ 40 + 2 }}"}}})
    )
    assert row.status == "succeeded"
    a = steps_of(row)["a"]
    assert a["status"] == "succeeded"
    assert a["output"] == {"n": 42}
    assert a["attempts"] == 1
    assert a["started_at"] and a["finished_at"]
    assert row.finished_at is not None and row.lease_token is None


async def test_when_falsy_skips_the_step(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": 1}, "when": "{{ false }}"},
            {"id": "b", "action": "transform", "params": {"output": "{{ steps.a.status }}"}},
        )
    )
    assert row.status == "succeeded"
    assert steps_of(row)["a"]["status"] == "skipped"
    assert steps_of(row)["b"]["output"] == "skipped"


async def test_unknown_action_fails_with_action_not_found_without_retry(harness: Harness) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "nope", "params": {}}, retry={"max_retries": 3})
    )
    assert row.status == "failed"
    a = steps_of(row)["a"]
    assert a["error"]["type"] == "ActionNotFound"
    assert a["error"]["retryable"] is False
    assert a["attempts"] == 0
    assert row.error["type"] == "ActionNotFound"


async def test_retries_exhaust_after_one_plus_max_retries_with_the_last_error(
    harness: Harness,
) -> None:
    # The url is refused as SSRF? No: a closed loopback port (allow-listed) fails to connect.
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "http_request",
                "params": {"url": "http://127.0.0.1:9/x", "timeout": "1s"},
                "retry": {"max_retries": 2, "backoff": "none", "initial_delay": "0s"},
            }
        )
    )
    assert row.status == "failed"
    a = steps_of(row)["a"]
    assert a["attempts"] == 3
    assert a["error"]["type"] == "HttpConnectionError"
    assert a["error"]["retryable"] is True


async def test_templated_params_render_against_the_run_context(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": {"x": "{{ inputs.who }}"}}},
            {
                "id": "b",
                "action": "transform",
                "params": {
                    "output": {
                        "greet": "hi {{ steps.a.output.x }}",
                        "run": "{{ run.id }}",
                        "trigger": "{{ trigger.type }}",
                    }
                },
            },
        ),
        {"who": "bob"},
    )
    b = steps_of(row)["b"]["output"]
    assert b == {"greet": "hi bob", "run": row.id, "trigger": "schedule"}


async def test_no_schema_passes_inputs_through_with_runtime_keys(harness: Harness) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "transform", "params": {"output": "{{ inputs }}"}}),
        {"anything": [1, 2], "nested": {"k": "v"}},
    )
    assert row.status == "succeeded"
    assert row.inputs["anything"] == [1, 2]
    assert row.inputs["nested"] == {"k": "v"}
    assert set(row.inputs) == {"anything", "nested", "fired_at", "scheduled_for", "last_fired_at"}
    assert row.inputs["fired_at"] and row.inputs["scheduled_for"]
    assert row.inputs["last_fired_at"] is None
    assert steps_of(row)["a"]["output"] == row.inputs


async def test_invalid_inputs_fail_the_run_with_dispatch_error(harness: Harness) -> None:
    definition = plan({"id": "a", "action": "transform", "params": {"output": 1}})
    definition["inputs"] = {
        "schema": {
            "type": "object",
            "required": ["repo"],
            "properties": {"repo": {"type": "string"}, "n": {"type": "integer"}},
        }
    }
    row = await harness.run(definition, {"n": "x"})
    assert row.status == "failed"
    assert row.error["type"] == "DispatchError"
    assert set(row.error["fields"]) == {"inputs.repo", "inputs.n"}
    assert row.steps == []


async def test_trigger_static_inputs_merge_under_fire_inputs(harness: Harness) -> None:
    definition = plan({"id": "a", "action": "transform", "params": {"output": "{{ inputs }}"}})
    definition["triggers"] = [
        {
            "id": "t1",
            "type": "schedule",
            "config": {"cron": "* * * * *"},
            "inputs": {"a": 1, "b": 1},
        }
    ]
    row = await harness.run(definition, {"b": 2}, trigger_id="t1")
    assert row.inputs["a"] == 1 and row.inputs["b"] == 2


async def test_template_error_is_a_non_retryable_failure_with_its_path(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": "{{ inputs.missing.x }}"}},
            retry={"max_retries": 2, "initial_delay": "0s"},
        )
    )
    a = steps_of(row)["a"]
    assert row.status == "failed"
    assert a["error"]["type"] == "TemplateError"
    assert a["error"]["fields"] == ["plan[0].params.output"]
    assert a["attempts"] == 0


async def test_sandbox_escape_attempts_fail_as_template_errors(harness: Harness) -> None:
    corpus = [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ run.__class__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ lipsum.__globals__['os'].system('id') }}",
        "{{ self._TemplateReference__context }}",
        "{% for i in range(10**9) %}x{% endfor %}",
    ]
    for i, expr in enumerate(corpus):
        row = await harness.run(
            plan({"id": "a", "action": "transform", "params": {"output": expr}})
        )
        assert row.status == "failed", (i, expr, steps_of(row)["a"])
        assert steps_of(row)["a"]["error"]["type"] == "TemplateError", expr


async def test_step_outputs_are_data_and_never_rendered_again(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": "{{ inputs.evil }}"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ steps.a.output }}"}},
        ),
        {"evil": "{{ 7 * 7 }}"},
    )
    assert steps_of(row)["b"]["output"] == "{{ 7 * 7 }}"


async def test_step_timeout_times_the_step_out_and_fails_the_run(harness: Harness) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "wait", "params": {"duration": "5s"}, "timeout": "50ms"})
    )
    assert row.status == "failed"
    a = steps_of(row)["a"]
    assert a["status"] == "timed_out"
    assert a["error"]["type"] == "StepTimeout"


async def test_run_timeout_ends_the_run_timed_out(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "wait", "params": {"duration": "20ms"}},
            {"id": "b", "action": "wait", "params": {"duration": "5s"}},
            timeout="150ms",
        )
    )
    assert row.status == "timed_out"
    assert steps_of(row)["a"]["status"] == "succeeded"
    assert steps_of(row)["b"]["status"] == "timed_out"
    assert row.error["type"] == "RunTimeout"


async def test_on_failure_steps_run_after_a_failure(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "nope"},
            on_failure=[
                {"id": "alert", "action": "transform", "params": {"output": "{{ error.type }}"}}
            ],
        )
    )
    assert row.status == "failed"
    alert = steps_of(row)["alert"]
    assert alert["phase"] == "on_failure"
    assert alert["output"] == "ActionNotFound"


async def test_secrets_are_resolved_and_redacted_from_records(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {
                "id": "a",
                "action": "transform",
                "params": {"output": "token={{ secrets.TOKEN }}"},
            },
            {"id": "b", "action": "log", "params": {"message": "{{ secrets.TOKEN }}"}},
        )
    )
    assert row.status == "succeeded"
    text = str(row.steps) + str(row.error)
    assert "s3cr3t-value" not in text
    assert steps_of(row)["a"]["output"] == "token=***"


async def test_unknown_secret_fails_with_secret_error(harness: Harness) -> None:
    row = await harness.run(
        plan({"id": "a", "action": "transform", "params": {"output": "{{ secrets.NOPE }}"}})
    )
    assert row.status == "failed"
    assert steps_of(row)["a"]["error"]["type"] == "SecretError"


async def test_params_violating_the_action_schema_fail_without_retry(harness: Harness) -> None:
    row = await harness.run(
        plan(
            {"id": "a", "action": "wait", "params": {"duration": "soon"}}, retry={"max_retries": 2}
        )
    )
    a = steps_of(row)["a"]
    assert a["error"]["type"] == "ValidationError"
    assert a["attempts"] == 0


async def test_log_action_never_writes_secrets_to_the_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    row = await harness.run(
        plan({"id": "a", "action": "log", "params": {"message": "key {{ secrets.TOKEN }}"}})
    )
    assert row.status == "succeeded"
    assert "s3cr3t-value" not in caplog.text
    assert "key ***" in caplog.text


async def test_output_that_cannot_be_stored_fails_the_step_and_the_run(harness: Harness) -> None:
    # jsonb refuses NUL characters; any external JSON may carry one.
    row = await harness.run(
        plan(
            {"id": "a", "action": "transform", "params": {"output": {"v": "{{ 'a\\x00b' }}"}}},
            {"id": "b", "action": "log", "params": {"message": "never"}},
        )
    )
    assert row.status == "failed"
    a = steps_of(row)["a"]
    assert a["status"] == "failed" and a["output"] is None
    assert a["error"]["type"] == "OutputNotStorable" and "output.v" in a["error"]["message"]
    assert row.error["type"] == "OutputNotStorable"
    assert "b" not in steps_of(row)


async def test_a_failure_while_resolving_inputs_fails_the_run(harness: Harness) -> None:
    # A schema whose regex only breaks when a value is checked against it.
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(unclosed"}}}
    definition = plan({"id": "a", "action": "log", "params": {"message": "never"}})
    definition["inputs"] = {"schema": schema}
    row = await harness.run(definition, {"x": "value"})
    assert row.status == "failed" and row.lease_token is None
    assert row.error["type"] == "DispatchError"
    assert "inputs" in row.error["message"]
    assert row.steps == []


async def test_params_the_actions_schema_refuses_fail_the_step_whether_literal_or_rendered(
    harness: Harness,
) -> None:
    # Definitions refuses these at save; a version skew or a rendered value still meets them.
    for params, bad, field in (
        ({"duration": "soon"}, "soon", "plan[0].params.duration"),
        ({"duration": "{{ inputs.d }}"}, "later", "plan[0].params.duration"),
        ({"duration": "0s", "extra": 1}, "extra", "plan[0].params"),
    ):
        row = await harness.run(plan({"id": "w", "action": "wait", "params": params}), {"d": bad})
        assert row.status == "failed", params
        error = steps_of(row)["w"]["error"]
        assert (error["type"], error["fields"], error["retryable"]) == (
            "ValidationError",
            [field],
            False,
        )
        assert bad in error["message"]
        assert steps_of(row)["w"]["attempts"] == 0
    # The same literal params, valid, on two runs: each its own copy, both run.
    step = {"id": "w", "action": "wait", "params": {"duration": "1ms"}}
    for _ in range(2):
        row = await harness.run(plan(step))
        assert row.status == "succeeded"
        assert steps_of(row)["w"]["params"] == {"duration": "1ms"}
    assert step["params"] == {"duration": "1ms"}
