"""Longer `autom` CLI workflows against the real services, each test in its own workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from autom.cli.errors import ExitCode
from autom.devstack import mcpserver
from autom.devstack.eventually import assert_eventually
from autom.devstack.ports import free_port
from autom.devstack.testing import TEST_SIGNING_KEY, start_service

THREE_STEPS = """\
name: three-steps
plan:
  - id: first
    action: log
    params: {message: "one"}
  - id: second
    action: wait
    params: {duration: 0s}
  - id: third
    action: transform
    params: {output: {n: "{{ 40 + 2 }}"}}
"""

FAILS_THEN_ALERTS = """\
name: fails-then-alerts
plan:
  - id: boom
    action: transform
    params: {output: "{{ inputs.missing.deeper }}"}
execution:
  on_failure:
    - id: alert
      action: log
      params: {message: "it failed"}
"""


Cli = Any  # the `cli` fixture of conftest.py


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_run_watch_shows_every_step_then_the_outcome(cli: Cli, tmp_path: Path) -> None:
    created = await cli("automations", "create", "-f", _file(tmp_path, "a.yaml", THREE_STEPS))
    assert created.exit_code == 0, created.output
    result = await cli("run", "three-steps", "--watch")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    done = [i for i, line in enumerate(lines) if "succeeded" in line and "attempt" in line]
    assert [lines[i].split()[1] for i in done] == ["first", "second", "third"], result.output
    assert lines[-1].startswith("Run succeeded"), result.output

    as_json = await cli("run", "three-steps", "--watch", "--json")
    assert as_json.exit_code == 0, as_json.output
    last = json.loads(as_json.output.strip().splitlines()[-1])["run"]
    assert last["status"] == "RUN_STATUS_SUCCEEDED"
    assert [s["stepId"] for s in last["steps"]] == ["first", "second", "third"]


async def test_run_watch_shows_on_failure_steps(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, "b.yaml", FAILS_THEN_ALERTS)
    assert (await cli("automations", "create", "-f", path)).exit_code == 0
    result = await cli("run", "fails-then-alerts", "--watch")
    assert result.exit_code == ExitCode.RUN_FAILED, result.output
    assert "boom" in result.output
    assert any("alert" in line and "(on failure)" in line for line in result.output.splitlines())
    assert result.output.splitlines()[-2].startswith("Run failed"), result.output


async def test_runs_list_by_name_shows_names_and_status(cli: Cli, tmp_path: Path) -> None:
    assert (
        await cli("automations", "create", "-f", _file(tmp_path, "a.yaml", THREE_STEPS))
    ).exit_code == 0
    assert (await cli("run", "three-steps", "--watch")).exit_code == 0
    listed = await cli("runs", "list", "-a", "three-steps")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "succeeded" in line]
    assert len(rows) == 1 and "three-steps" in rows[0] and "manual" in rows[0], listed.output
    missing = await cli("runs", "list", "-a", "no-such-automation")
    assert missing.exit_code == ExitCode.NOT_FOUND


async def test_unknown_key_names_it_and_lists_valid_keys(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, "typo.yaml", THREE_STEPS + "trigers: []\n")
    result = await cli("automations", "create", "-f", path)
    assert result.exit_code == ExitCode.INVALID
    assert "unknown key 'trigers' at the top level" in result.output
    assert "did you mean 'triggers'?" in result.output
    assert "Message type" not in result.output


async def test_conflicts_have_their_own_exit_code(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, "a.yaml", THREE_STEPS)
    assert (await cli("automations", "create", "-f", path)).exit_code == 0
    again = await cli("automations", "create", "-f", path)
    assert again.exit_code == ExitCode.CONFLICT, again.output


async def test_secrets_are_set_from_stdin_listed_by_name_and_deleted(cli: Cli) -> None:
    assert (await cli("secrets", "set", "API_KEY", input="s3cr3t-value\n")).exit_code == 0
    listed = await cli("secrets", "list")
    assert listed.exit_code == 0 and "API_KEY" in listed.output
    assert "s3cr3t-value" not in listed.output
    as_json = await cli("secrets", "list", "--json")
    assert "s3cr3t-value" not in as_json.output
    assert (await cli("secrets", "delete", "API_KEY")).exit_code == 0
    assert "API_KEY" not in (await cli("secrets", "list")).output
    assert (await cli("secrets", "set", "EMPTY", input="")).exit_code == ExitCode.INVALID


async def test_members_and_workspaces(cli: Cli) -> None:
    assert (await cli("members", "set", "user:bob", "--role", "editor")).exit_code == 0
    listed = await cli("members", "list")
    assert any("user:bob" in line and "editor" in line for line in listed.output.splitlines())
    assert (await cli("members", "remove", "user:bob")).exit_code == 0
    assert "user:bob" not in (await cli("members", "list")).output
    created = await cli("workspaces", "create", "team-b", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["workspace"]["name"] == "team-b"


async def test_schedule_trigger_now_and_backfill_start_runs(cli: Cli, tmp_path: Path) -> None:
    text = (
        "name: nightly\n"
        "triggers:\n  - type: schedule\n    config: {cron: '0 3 * * *', timezone: UTC}\n"
        "plan:\n  - id: a\n    action: log\n    params: {message: hi}\n"
    )
    assert (
        await cli("automations", "create", "-f", _file(tmp_path, "n.yaml", text))
    ).exit_code == 0

    async def schedule_id() -> str:
        listed = await cli("schedules", "list", "--json")
        schedules = json.loads(listed.output).get("schedules", [])
        assert schedules, "no schedule yet"
        return str(schedules[0]["id"])

    sid = await assert_eventually(schedule_id, timeout=15)
    fired = await cli("schedules", "trigger", sid)
    assert fired.exit_code == 0 and "Fired" in fired.output, fired.output
    filled = await cli(
        "schedules",
        "backfill",
        sid,
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-03T00:00:00Z",
    )
    assert filled.exit_code == 0 and "2 fires created" in filled.output, filled.output

    async def three_runs() -> None:
        listed = await cli("runs", "list", "-a", "nightly", "--json")
        assert len(json.loads(listed.output).get("runs", [])) == 3

    await assert_eventually(three_runs, timeout=20)


async def test_drafts_list_version_and_completion(cli: Cli) -> None:
    listed = await cli("drafts", "list")
    assert listed.exit_code == 0, listed.output
    version = await cli("--version")
    assert version.exit_code == 0 and version.output.startswith("autom ")
    assert "--install-completion" in (await cli("--help")).output


async def test_a_drafter_timeout_shows_the_server_setting(cli: Cli, service_stack: Any) -> None:
    """The drafter's own deadline names AUTOM_DRAFTER_TIMEOUT_SECONDS, not the client's."""
    services = service_stack
    drafter = await start_service(
        "drafter",
        services.database_url,
        services.nats_url,
        TEST_SIGNING_KEY,
        definitions_addr=services.definitions,
        scheduler_addr=services.scheduler,
        model="openai/scripted",
        api_key="test",
        api_base=services.llm.url,
        num_retries=0,
        timeout_seconds=0.5,
        shutdown_grace_seconds=0.2,
    )
    try:
        services.llm.slow(3.0)
        env = {"AUTOM_DRAFTER_ADDR": drafter.address}
        result = await cli("draft", "every morning log hello", "--tz", "UTC", env=env)
    finally:
        services.llm.clear()
        await drafter.stop()
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "AUTOM_DRAFTER_TIMEOUT_SECONDS" in result.output, result.output
    assert "AUTOM_TIMEOUT=" not in result.output, result.output


async def test_output_option_on_reads(cli: Cli, tmp_path: Path) -> None:
    import yaml

    path = _file(tmp_path, "o.yaml", THREE_STEPS)
    assert (await cli("automations", "create", "-f", path)).exit_code == 0
    as_yaml = await cli("automations", "list", "-o", "yaml")
    assert as_yaml.exit_code == 0, as_yaml.output
    listed = yaml.safe_load(as_yaml.output)
    assert [a["name"] for a in listed["automations"]] == ["three-steps"], as_yaml.output
    # Anywhere on the line, in either spelling.
    as_json = await cli("-o", "json", "automations", "get", "three-steps")
    assert json.loads(as_json.output)["automation"]["name"] == "three-steps", as_json.output
    assert json.loads((await cli("automations", "list", "--output=json")).output)["automations"]
    table = await cli("automations", "list", "-otable")
    assert "three-steps" in table.output and not table.output.lstrip().startswith("{")
    bad = await cli("automations", "list", "-o", "xml")
    assert bad.exit_code == 2 and "table, json, yaml" in bad.output, bad.output


async def test_webhook_url_rotation_and_workspace_usage(cli: Cli, repo_root: Path) -> None:
    example = str(repo_root / "examples/github-push-to-slack.yaml")
    created = await cli("automations", "create", "-f", example)
    assert created.exit_code == 0, created.output
    (first,) = [line for line in created.output.splitlines() if "Webhook webhook_0" in line]
    assert "POST <gateway>/v1/hooks/wh_" in first
    shown = await cli("automations", "get", "github-push-to-slack")
    assert first in shown.output
    rotated = await cli("automations", "rotate-webhook", "github-push-to-slack")
    assert rotated.exit_code == 0, rotated.output
    new_path = rotated.output.split("POST <gateway>")[1].strip()
    assert new_path.startswith("/v1/hooks/wh_") and new_path not in first

    usage = await cli("workspace", "usage")
    assert usage.exit_code == 0, usage.output
    rows = {
        cells[0]: cells[1:]
        for cells in (line.split() for line in usage.output.splitlines())
        if len(cells) == 3
    }
    assert rows["active_automations"] == ["1", "1000"]
    assert rows["concurrent_runs"] == ["0", "none"]


async def test_mcp_add_list_rm(cli: Cli, service_stack: Any) -> None:
    # Its own definitions, allowing loopback as for http_request: the test MCP server runs on
    # 127.0.0.1. Its own secrets key, so the test's secrets are set through it too.
    services = service_stack
    definitions = await start_service(
        "definitions",
        services.database_url,
        services.nats_url,
        TEST_SIGNING_KEY,
        secrets_key=Fernet.generate_key().decode(),
        http_allow_cidrs="127.0.0.0/8",
        shutdown_grace_seconds=0.2,
    )
    try:
        await _mcp_add_list_rm(cli, {"AUTOM_DEFINITIONS_ADDR": definitions.address})
    finally:
        await definitions.stop()


async def _mcp_add_list_rm(run: Cli, env: dict[str, str]) -> None:
    async def cli(*args: str, input: str | None = None) -> Any:
        return await run(*args, env=env, input=input)

    assert (await cli("secrets", "set", "GH_TOKEN", input="tok-s3cr3t\n")).exit_code == 0
    with mcpserver.running(free_port()) as url:
        added = await cli(
            "mcp", "add", "tools", url, "-H", "Authorization=Bearer {{ secrets.GH_TOKEN }}"
        )
        assert added.exit_code == 0, added.output
        assert "mcp:tools/add" in added.output and "mcp:tools/lookup" in added.output
    listed = await cli("mcp", "list")
    assert listed.exit_code == 0, listed.output
    assert "tools" in listed.output and "Authorization" in listed.output
    assert "s3cr3t" not in listed.output and "secrets." not in listed.output
    refused = await cli("mcp", "add", "meta", "http://169.254.169.254/mcp")
    assert refused.exit_code != 0 and "url" in refused.output, refused.output
    assert (await cli("mcp", "rm", "tools")).exit_code == 0
    assert "tools" not in (await cli("mcp", "list", "--json")).output
