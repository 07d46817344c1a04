"""The `autom` CLI against fake gRPC services behind the real auth/error interceptor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from autom.cli.errors import ExitCode

Cli = Any  # the `cli` fixture of conftest.py
Fakes = Any  # the `fakes` fixture of conftest.py

BAD_DEFINITION = """
name: Bad Name
plan:
  - id: ok
    action: log
  - id: 2nd
    action: log
  - id: ok
    action: log
"""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_create_from_example_then_get_and_list(cli: Cli, repo_root: Path) -> None:
    result = await cli("automations", "create", "-f", str(repo_root / "examples/heartbeat.yaml"))
    assert result.exit_code == 0, result.output
    assert "Created heartbeat" in result.stdout
    assert "version 1" in result.stdout

    result = await cli("automations", "get", "heartbeat")
    assert result.exit_code == 0, result.output
    assert "beat" in result.stdout and "* * * * * (UTC)" in result.stdout

    result = await cli("automations", "list", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    names = [a["name"] for a in listed["automations"]]
    assert "heartbeat" in names
    # Canonical JSON: lowerCamelCase, int64 as strings, enums by name.
    heartbeat = next(a for a in listed["automations"] if a["name"] == "heartbeat")
    assert heartbeat["version"] == "1"
    assert heartbeat["status"] == "AUTOMATION_STATUS_ACTIVE"
    assert heartbeat["definition"]["triggers"][0]["config"]["cron"] == "* * * * *"


async def test_create_json_output_is_canonical(cli: Cli, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "def.json",
        json.dumps({"name": "json-made", "plan": [{"id": "a", "action": "log"}]}),
    )
    result = await cli("automations", "create", "-f", path, "--paused", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["automation"]["status"] == "AUTOMATION_STATUS_PAUSED"
    assert body["automation"]["createTime"].endswith("Z")


async def test_validate_with_violations_exits_2_and_prints_paths(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", BAD_DEFINITION)
    result = await cli("automations", "validate", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    assert "is not a valid definition" in result.stderr
    assert "name: must match" in result.stderr
    assert "plan[1].id: must match" in result.stderr
    assert "plan[2].id: duplicate step id 'ok'" in result.stderr
    # --json: the response on stdout, still exit 2.
    result = await cli("automations", "validate", "-f", path, "--json")
    assert result.exit_code == ExitCode.INVALID
    assert json.loads(result.stdout)["valid"] is False


async def test_create_rejected_by_the_service_prints_field_paths(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", BAD_DEFINITION)
    result = await cli("automations", "create", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: Invalid request:"
    assert "  definition.name: must match ^[a-z0-9][a-z0-9_-]{0,62}$" in lines
    assert "  definition.plan[2].id: duplicate step id 'ok'" in lines


async def test_unknown_field_in_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, "typo.yaml", "name: x\nplann: []\n")
    result = await cli("automations", "create", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    assert "plann" in result.stderr
    result = await cli("automations", "create", "-f", str(tmp_path / "missing.yaml"))
    assert result.exit_code == ExitCode.INVALID
    assert "Cannot read" in result.stderr


async def test_yaml_keeps_times_and_dates_as_strings(cli: Cli, tmp_path: Path) -> None:
    text = (
        "name: yaml-scalars\n"
        "plan:\n  - id: a\n    action: log\n    params: {at: 8:30, day: 2025-03-30, on: yes}\n"
    )
    result = await cli("automations", "create", "-f", _write(tmp_path, "y.yaml", text), "--json")
    assert result.exit_code == 0, result.output
    params = json.loads(result.stdout)["automation"]["definition"]["plan"][0]["params"]
    assert params == {"at": "8:30", "day": "2025-03-30", "on": "yes"}


async def test_run_watch_shows_steps_and_exits_0_on_success(
    cli: Cli, tmp_path: Path, fakes: Fakes
) -> None:
    text = (
        "name: two-steps\nplan:\n  - id: fetch\n    action: http_request\n"
        "  - id: summarise\n    action: transform\n"
    )
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "t.yaml", text))
    ).exit_code == 0
    result = await cli("run", "two-steps", "--input", "repo=octo/widgets", "-i", "n=3", "--watch")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("fetch") < out.index("summarise")
    assert "✓ fetch  http_request  succeeded  1 attempt" in out
    assert "Run succeeded" in out.splitlines()[-1]
    run = next(r for r in fakes.executor.runs.values() if r.inputs.fields["n"].number_value == 3)
    assert run.inputs.fields["repo"].string_value == "octo/widgets"


async def test_run_watch_exits_1_when_the_run_fails(cli: Cli, tmp_path: Path) -> None:
    text = "name: breaks\nplan:\n  - id: first\n    action: fail\n  - id: second\n    action: log\n"
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "b.yaml", text))
    ).exit_code == 0
    result = await cli("run", "breaks", "--watch")
    assert result.exit_code == ExitCode.RUN_FAILED, result.output
    assert "✗ first  fail  failed" in result.stdout
    assert "StepFailed: the step was told to fail" in result.stdout
    assert "↷ second" in result.stdout
    # --json streams one event per line, still exit 1.
    result = await cli("run", "breaks", "--watch", "--json")
    assert result.exit_code == ExitCode.RUN_FAILED
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["kind"] == "snapshot"
    assert events[-1]["run"]["status"] == "RUN_STATUS_FAILED"


async def test_runs_list_get_retry_cancel(cli: Cli, tmp_path: Path, fakes: Fakes) -> None:
    text = "name: retried\nplan:\n  - id: only\n    action: fail\n"
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "r.yaml", text))
    ).exit_code == 0
    assert (await cli("run", "retried", "--watch")).exit_code == ExitCode.RUN_FAILED
    failed = next(r for r in fakes.executor.runs.values() if r.status == 4)
    result = await cli("runs", "list", "--status", "failed")
    assert result.exit_code == 0
    assert failed.id in result.stdout
    result = await cli("runs", "get", failed.id)
    assert result.exit_code == 0
    assert "StepFailed" in result.stdout
    result = await cli("runs", "retry", failed.id, "--json")
    assert result.exit_code == 0
    new_id = json.loads(result.stdout)["run"]["id"]
    assert json.loads(result.stdout)["run"]["retryOfRunId"] == failed.id
    result = await cli("runs", "cancel", new_id)
    assert result.exit_code == 0 and "cancelled" in result.stdout
    result = await cli("runs", "retry", new_id)
    assert result.exit_code == ExitCode.REFUSED
    assert "Error: Only failed runs can be retried." in result.stderr


async def test_lifecycle_and_delete(cli: Cli, tmp_path: Path) -> None:
    text = "name: lifecycle\nplan:\n  - id: a\n    action: log\n"
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "l.yaml", text))
    ).exit_code == 0
    result = await cli("automations", "pause", "lifecycle", "--note", "holiday")
    assert result.exit_code == 0 and "paused" in result.stdout
    result = await cli("automations", "list", "--status", "paused")
    assert "lifecycle" in result.stdout
    result = await cli("automations", "resume", "lifecycle")
    assert (
        result.exit_code == 0 and "Resumed lifecycle" in result.stdout and "active" in result.stdout
    )
    result = await cli("automations", "update", "lifecycle", "-f", _write(tmp_path, "l.yaml", text))
    assert result.exit_code == 0 and "version 2" in result.stdout
    result = await cli(
        "automations", "update", "lifecycle", "-f", str(tmp_path / "l.yaml"), "--version", "1"
    )
    assert result.exit_code == ExitCode.CONFLICT
    assert "stale" in result.stderr
    result = await cli("automations", "versions", "lifecycle", "--json")
    assert [v["version"] for v in json.loads(result.stdout)["versions"]] == ["2", "1"]
    result = await cli("automations", "get", "lifecycle", "--definition")
    assert result.stdout.startswith("name: lifecycle")
    result = await cli("automations", "delete", "lifecycle", input="n\n")
    assert result.exit_code == ExitCode.INVALID
    result = await cli("automations", "delete", "lifecycle", "--yes")
    assert result.exit_code == 0
    result = await cli("automations", "get", "lifecycle")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.startswith("Error: Automation 'lifecycle' not found.")


async def test_auth_errors_exit_4_with_a_hint(cli: Cli, fakes: Fakes) -> None:
    from autom.core.auth import Role

    result = await cli("automations", "list", env={"AUTOM_TOKEN": None})
    assert result.exit_code == ExitCode.AUTH
    assert result.stderr.startswith("Error: Missing bearer token")
    assert "autom login" in result.stderr
    result = await cli("tokens", "list", env={"AUTOM_TOKEN": fakes.token(Role.VIEWER)})
    assert result.exit_code == ExitCode.AUTH
    assert "lacks permission tokens:manage" in result.stderr


async def test_unreachable_service_exits_5(cli: Cli) -> None:
    result = await cli(
        "runs", "list", env={"AUTOM_EXECUTOR_ADDR": "127.0.0.1:1", "AUTOM_TIMEOUT": "3"}
    )
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "Error: Cannot reach the executor service at 127.0.0.1:1." in result.stderr


async def test_login_stores_the_token_for_later_commands(
    cli: Cli, fakes: Fakes, tmp_path: Path
) -> None:
    token = fakes.token()
    config = tmp_path / "login" / "config.json"
    env = {"AUTOM_TOKEN": None, "AUTOM_CONFIG": str(config)}
    result = await cli("login", "--token", token, env=env)
    assert result.exit_code == 0, result.output
    assert "Logged in as user:owner" in result.stdout
    assert json.loads(config.read_text())["token"] == token
    assert oct(os.stat(config).st_mode & 0o777) == "0o600"
    result = await cli("whoami", env=env)
    assert result.exit_code == 0
    assert "ws-cli" in result.stdout and str(config) in result.stdout
    result = await cli("login", "--token", "garbage", env=env)
    assert result.exit_code == ExitCode.AUTH
    assert json.loads(config.read_text())["token"] == token


async def test_schedules_preview_and_list(cli: Cli) -> None:
    result = await cli(
        "schedules",
        "preview",
        "30 2 * * *",
        "--tz",
        "Europe/Zurich",
        "--on-missing",
        "skip",
        "--count",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "on_missing=skip" in result.stdout
    assert "2025-03-30 03:00:00 CEST" in result.stdout
    assert "2025-03-30 01:00:00Z" in result.stdout
    result = await cli("schedules", "preview", "bad", "--tz", "Mars/Olympus")
    assert result.exit_code == ExitCode.INVALID
    assert "cron: must have 5 or 6 fields" in result.stderr
    assert "timezone: unknown time zone" in result.stderr
    result = await cli("schedules", "list")
    assert "At 09:00 on Monday, Europe/Zurich" in result.stdout


async def test_draft_then_approve_with_flags(cli: Cli, fakes: Fakes) -> None:
    result = await cli(
        "draft", "log a heartbeat every minute", "--refine", "make it hourly", "--approve"
    )
    assert result.exit_code == 0, result.output
    assert "Every minute, UTC" in result.stdout
    assert "Approved: automation" in result.stdout
    assert any(a.name.startswith("refined-") for a in fakes.definitions.automations.values())


async def test_draft_interactive_reject_and_clarification(cli: Cli, fakes: Fakes) -> None:
    result = await cli("draft", "something vague")
    assert result.exit_code == 0
    assert "Which time zone?" in result.stdout
    draft_id = next(d.id for d in fakes.drafter.drafts.values() if d.intent == "something vague")
    result = await cli("draft", "--draft", draft_id, "--refine", "Europe/Zurich", "--json")
    assert json.loads(result.stdout)["status"] == "DRAFT_STATUS_PENDING"
    result = await cli("draft", "--draft", draft_id, "--reject", "--reason", "not now")
    assert result.exit_code == 0 and "Rejected" in result.stdout
    assert fakes.drafter.drafts[draft_id].reject_reason == "not now"
    result = await cli("draft", "--draft", draft_id, "--approve")
    assert result.exit_code == ExitCode.INVALID
    assert "is rejected, not pending" in result.stderr


async def test_draft_interactive_refine_then_approve(cli: Cli, fakes: Fakes) -> None:
    result = await cli("draft", "post a digest", "--interactive", input="r\nrun it hourly\na\n")
    assert result.exit_code == 0, result.output
    assert "What should change?" in result.stdout
    assert "Approved: automation" in result.stdout
    draft = next(d for d in fakes.drafter.drafts.values() if d.intent == "post a digest")
    assert [r.instruction for r in draft.revisions] == ["post a digest", "run it hourly"]
    assert draft.status == 6  # approved


async def test_tokens_create_list_revoke(cli: Cli) -> None:
    result = await cli(
        "tokens", "create", "--principal", "user:bob", "--role", "editor", "--ttl", "7d", "--json"
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["secret"].count(".") == 2
    result = await cli("tokens", "list")
    assert created["token"]["id"] in result.stdout
    result = await cli("tokens", "revoke", created["token"]["id"])
    assert result.exit_code == 0
    result = await cli("tokens", "create", "--principal", "user:bob", "--ttl", "soon")
    assert result.exit_code == ExitCode.INVALID


async def test_usage_errors_exit_2(cli: Cli) -> None:
    assert (await cli("run")).exit_code == 2
    assert (await cli("run", "x", "--input", "novalue")).exit_code == 2
    assert (await cli("runs", "list", "--status", "sideways")).exit_code == 2


def test_a_run_shows_the_tool_calls_of_its_agent_steps(capsys: pytest.CaptureFixture[str]) -> None:
    from autom.api.executor.v1 import executor_pb2 as pb
    from autom.cli.output import Out
    from autom.cli.runs import Progress, show_run

    ok = pb.ToolCall(call_n=1, name="http_request", status="succeeded", duration_ms=12)
    ok.finish_time.seconds = 1
    refused = pb.ToolCall(
        call_n=2,
        name="emit_event",
        status="refused",
        error=pb.ErrorDetail(type="ToolNotDeclared", message="not declared"),
    )
    step = pb.StepRun(
        step_id="ask",
        action="agent_task",
        status=pb.STEP_STATUS_SUCCEEDED,
        tool_calls=[ok, refused],
    )
    run = pb.Run(id="r1", status=pb.RUN_STATUS_SUCCEEDED, steps=[step])
    show_run(Out(json_mode=False), run)
    Progress(Out(json_mode=False)).step(step)
    printed = capsys.readouterr().out
    assert "Tool calls" in printed and "12ms" in printed
    assert "ToolNotDeclared: not declared" in printed
    assert "tool 1 http_request  succeeded" in printed
    assert "tool 2 emit_event  refused" in printed
