"""The `autom` CLI against fake gRPC services behind the real auth/error interceptor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from autom.cli.errors import ExitCode
from autom.devstack.eventually import assert_eventually

Cli = Any  # the `cli` fixture of conftest.py
Token = Any  # the `token` fixture of conftest.py

BAD_DEFINITION = """
name: Bad Name
plan:
  - id: ok
    action: log
    params: {message: one}
  - id: 2nd
    action: log
    params: {message: two}
  - id: ok
    action: log
    params: {message: three}
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
        json.dumps(
            {
                "name": "json-made",
                "plan": [{"id": "a", "action": "log", "params": {"message": "x"}}],
            }
        ),
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
    assert any(line.startswith("  definition.plan[2].id: duplicate step id 'ok'") for line in lines)


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
        "plan:\n  - id: a\n    action: transform\n"
        "    params: {output: {at: 8:30, day: 2025-03-30, on: yes}}\n"
    )
    result = await cli("automations", "create", "-f", _write(tmp_path, "y.yaml", text), "--json")
    assert result.exit_code == 0, result.output
    params = json.loads(result.stdout)["automation"]["definition"]["plan"][0]["params"]
    assert params == {"output": {"at": "8:30", "day": "2025-03-30", "on": "yes"}}


async def test_run_watch_shows_steps_and_exits_0_on_success(cli: Cli, tmp_path: Path) -> None:
    text = (
        "name: two-steps\nplan:\n  - id: fetch\n    action: transform\n"
        "    params: {output: '{{ inputs.repo }}'}\n"
        "  - id: summarise\n    action: log\n    params: {message: 'n={{ inputs.n }}'}\n"
    )
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "t.yaml", text))
    ).exit_code == 0
    result = await cli("run", "two-steps", "--input", "repo=octo/widgets", "-i", "n=3", "--watch")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("fetch") < out.index("summarise")
    assert "✓ fetch  transform  succeeded  1 attempt" in out
    assert "Run succeeded" in out.splitlines()[-1]
    (run,) = json.loads((await cli("runs", "list", "-a", "two-steps", "--json")).stdout)["runs"]
    # `n=3` is sent as a number, `repo=…` as a string.
    assert (run["inputs"]["repo"], run["inputs"]["n"]) == ("octo/widgets", 3)
    result = await cli("runs", "get", run["id"], "--json")
    assert json.loads(result.stdout)["run"]["steps"][0]["output"] == "octo/widgets"


FAILS = """\
name: breaks
plan:
  - id: first
    action: transform
    params: {output: "{{ inputs.missing.deeper }}"}
  - id: second
    action: log
    params: {message: never}
"""


async def test_run_watch_exits_1_when_the_run_fails(cli: Cli, tmp_path: Path) -> None:
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "b.yaml", FAILS))
    ).exit_code == 0
    result = await cli("run", "breaks", "--watch")
    assert result.exit_code == ExitCode.RUN_FAILED, result.output
    assert "✗ first  transform  failed" in result.stdout
    assert "TemplateError: step first: 'inputs' has no attribute 'missing'" in result.stdout
    assert "second" not in result.stdout
    # --json streams one event per line, still exit 1.
    result = await cli("run", "breaks", "--watch", "--json")
    assert result.exit_code == ExitCode.RUN_FAILED
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["kind"] == "snapshot"
    assert events[-1]["run"]["status"] == "RUN_STATUS_FAILED"


async def test_runs_list_get_retry_cancel(cli: Cli, tmp_path: Path) -> None:
    text = FAILS.replace("breaks", "retried")
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "r.yaml", text))
    ).exit_code == 0
    assert (await cli("run", "retried", "--watch")).exit_code == ExitCode.RUN_FAILED
    result = await cli("runs", "list", "--status", "failed", "--json")
    assert result.exit_code == 0
    (failed,) = json.loads(result.stdout)["runs"]
    result = await cli("runs", "list", "--status", "failed")
    assert failed["id"] in result.stdout
    result = await cli("runs", "get", failed["id"])
    assert result.exit_code == 0
    assert "TemplateError" in result.stdout
    result = await cli("runs", "retry", failed["id"], "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["run"]["retryOfRunId"] == failed["id"]

    # A run still waiting is cancelled; only a failed, timed out or cancelled run is retried.
    waits = "name: waits\nplan:\n  - id: nap\n    action: wait\n    params: {duration: 1h}\n"
    assert (
        await cli("automations", "create", "-f", _write(tmp_path, "w.yaml", waits))
    ).exit_code == 0
    result = await cli("run", "waits", "--json")
    assert result.exit_code == 0, result.output
    waiting = json.loads(result.stdout)["run"]["id"]
    result = await cli("runs", "cancel", waiting)
    assert result.exit_code == 0 and "cancelled" in result.stdout
    result = await cli("runs", "retry", waiting, "--json")
    assert result.exit_code == 0
    retry = json.loads(result.stdout)["run"]
    assert retry["retryOfRunId"] == waiting
    assert (await cli("runs", "cancel", retry["id"])).exit_code == 0
    ok = "name: fine\nplan:\n  - id: a\n    action: log\n    params: {message: hi}\n"
    assert (await cli("automations", "create", "-f", _write(tmp_path, "f.yaml", ok))).exit_code == 0
    result = await cli("run", "fine", "--watch", "--json")
    assert result.exit_code == 0, result.output
    succeeded = json.loads(result.stdout.splitlines()[-1])["run"]["id"]
    result = await cli("runs", "retry", succeeded)
    assert result.exit_code == ExitCode.REFUSED
    assert "only failed, timed out or cancelled runs can be retried" in result.stderr


async def test_lifecycle_and_delete(cli: Cli, tmp_path: Path) -> None:
    text = "name: lifecycle\nplan:\n  - id: a\n    action: log\n    params: {message: hi}\n"
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
    assert "Automation is at version 2, not 1" in result.stderr
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


async def test_auth_errors_exit_4_with_a_hint(cli: Cli, token: Token) -> None:
    from autom.core.auth import Role

    result = await cli("automations", "list", env={"AUTOM_TOKEN": None})
    assert result.exit_code == ExitCode.AUTH
    assert result.stderr.startswith("Error: Missing bearer token")
    assert "autom login" in result.stderr
    result = await cli("tokens", "list", env={"AUTOM_TOKEN": token(Role.VIEWER)})
    assert result.exit_code == ExitCode.AUTH
    assert "lacks permission tokens:manage" in result.stderr


async def test_unreachable_service_exits_5(cli: Cli) -> None:
    result = await cli(
        "runs", "list", env={"AUTOM_EXECUTOR_ADDR": "127.0.0.1:1", "AUTOM_TIMEOUT": "3"}
    )
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "Error: Cannot reach the executor service at 127.0.0.1:1." in result.stderr


async def test_login_stores_the_token_for_later_commands(
    cli: Cli, token: Token, workspace: str, tmp_path: Path
) -> None:
    owner = token()
    config = tmp_path / "login" / "config.json"
    env = {"AUTOM_TOKEN": None, "AUTOM_CONFIG": str(config)}
    result = await cli("login", "--token", owner, env=env)
    assert result.exit_code == 0, result.output
    assert "Logged in as user:owner" in result.stdout
    assert json.loads(config.read_text())["token"] == owner
    assert oct(os.stat(config).st_mode & 0o777) == "0o600"
    result = await cli("whoami", env=env)
    assert result.exit_code == 0
    assert workspace in result.stdout and str(config) in result.stdout
    result = await cli("login", "--token", "garbage", env=env)
    assert result.exit_code == ExitCode.AUTH
    assert json.loads(config.read_text())["token"] == owner


async def test_schedules_preview_and_list(cli: Cli, tmp_path: Path) -> None:
    # 02:30 does not exist in Zurich on 2025-03-30 (the clocks jump from 02:00 to 03:00).
    preview = ("schedules", "preview", "30 2 * * *", "--tz", "Europe/Zurich", "--count", "3")
    after = ("--after", "2025-03-29T12:00:00+01:00")
    result = await cli(*preview, *after, "--on-missing", "skip")
    assert result.exit_code == 0, result.output
    assert "2025-03-30" not in result.stdout
    assert "2025-03-31 02:30:00 CEST" in result.stdout
    assert "2025-03-31 00:30:00Z" in result.stdout
    result = await cli(*preview, *after)
    assert result.exit_code == 0, result.output
    assert "2025-03-30 03:00:00 CEST" in result.stdout
    assert "2025-03-30 01:00:00Z" in result.stdout
    result = await cli("schedules", "preview", "bad")
    assert result.exit_code == ExitCode.INVALID
    assert "cron: cron expression 'bad' has 1 fields" in result.stderr
    result = await cli("schedules", "preview", "* * * * *", "--tz", "Mars/Olympus")
    assert result.exit_code == ExitCode.INVALID
    assert "timezone: " in result.stderr and "Mars/Olympus" in result.stderr
    result = await cli("schedules", "preview", "bad", "--tz", "Mars/Olympus")
    assert result.exit_code == ExitCode.INVALID
    assert "cron: " in result.stderr and "timezone: " in result.stderr

    text = (
        "name: mondays\ntriggers:\n  - type: schedule\n"
        "    config: {cron: '0 9 * * 1', timezone: Europe/Zurich}\n"
        "plan:\n  - id: a\n    action: log\n    params: {message: hi}\n"
    )
    created = await cli("automations", "create", "-f", _write(tmp_path, "m.yaml", text))
    assert created.exit_code == 0, created.output

    async def listed() -> None:
        result = await cli("schedules", "list", "--json")
        assert result.exit_code == 0, result.output
        schedules = json.loads(result.stdout)["schedules"]
        assert [s["description"] for s in schedules] == ["At 09:00, only on Monday (Europe/Zurich)"]
        result = await cli("schedules", "list")
        assert "At 09:00, only on Monday" in " ".join(result.stdout.split()), result.stdout

    # The scheduler learns of the automation from the definitions service's event.
    await assert_eventually(listed, timeout=30)


def _definition(name: str, cron: str = "* * * * *") -> dict[str, Any]:
    return {
        "name": name,
        "triggers": [{"type": "schedule", "config": {"cron": cron, "timezone": "UTC"}}],
        "plan": [{"id": "beat", "action": "log", "params": {"message": "beat"}}],
    }


async def _drafts(cli: Cli) -> list[dict[str, Any]]:
    result = await cli("drafts", "list", "--json")
    assert result.exit_code == 0, result.output
    drafts: list[dict[str, Any]] = json.loads(result.stdout)["drafts"]
    return drafts


async def _automation_names(cli: Cli) -> list[str]:
    result = await cli("automations", "list", "--json")
    return [a["name"] for a in json.loads(result.stdout)["automations"]]


async def test_draft_then_approve_with_flags(cli: Cli, service_stack: Any) -> None:
    service_stack.llm.reply({"definition": _definition("heartbeat-drafted")})
    service_stack.llm.reply({"definition": _definition("heartbeat-hourly", "0 * * * *")})
    result = await cli(
        "draft", "log a heartbeat every minute", "--refine", "make it hourly", "--approve"
    )
    assert result.exit_code == 0, result.output
    # The refined revision, with the scheduler's reading of its trigger.
    assert "When: Every hour (UTC)" in result.stdout, result.output
    assert "Approved: automation" in result.stdout
    assert await _automation_names(cli) == ["heartbeat-hourly"]


async def test_draft_interactive_reject_and_clarification(cli: Cli, service_stack: Any) -> None:
    service_stack.llm.reply({"questions": ["Which time zone?"]})
    result = await cli("draft", "something vague")
    assert result.exit_code == 0, result.output
    assert "Which time zone?" in result.stdout
    (draft,) = await _drafts(cli)
    assert draft["intent"] == "something vague"
    service_stack.llm.reply({"definition": _definition("zurich-beat")})
    result = await cli("draft", "--draft", draft["id"], "--refine", "Europe/Zurich", "--json")
    assert json.loads(result.stdout)["status"] == "DRAFT_STATUS_PENDING"
    result = await cli("draft", "--draft", draft["id"], "--reject", "--reason", "not now")
    assert result.exit_code == 0 and "Rejected" in result.stdout
    result = await cli("drafts", "get", draft["id"], "--json")
    assert json.loads(result.stdout)["rejectReason"] == "not now"
    result = await cli("draft", "--draft", draft["id"], "--approve")
    assert result.exit_code == ExitCode.INVALID
    assert "is rejected, not pending" in result.stderr


async def test_draft_interactive_refine_then_approve(cli: Cli, service_stack: Any) -> None:
    service_stack.llm.reply({"definition": _definition("digest")})
    service_stack.llm.reply({"definition": _definition("digest", "0 * * * *")})
    result = await cli("draft", "post a digest", "--interactive", input="r\nrun it hourly\na\n")
    assert result.exit_code == 0, result.output
    assert "What should change?" in result.stdout
    assert "Approved: automation" in result.stdout
    (draft,) = await _drafts(cli)
    result = await cli("drafts", "get", draft["id"], "--json")
    got = json.loads(result.stdout)
    assert [r["instruction"] for r in got["revisions"]] == ["post a digest", "run it hourly"]
    assert got["status"] == "DRAFT_STATUS_APPROVED"
    assert await _automation_names(cli) == ["digest"]


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
