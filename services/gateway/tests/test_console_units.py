"""The console's pure parts: the session cookie, YAML line mapping, the inputs form, queries."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography.fernet import Fernet
from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.gateway.console.app import AUDIT_PAGE_SIZE, audit_request, next_page
from autom.gateway.console.forms import FormError, input_fields, inputs_from_form
from autom.gateway.console.session import Session, SessionCodec, Workspace
from autom.gateway.console.text import (
    definition_to_yaml,
    line_of,
    parse_definition,
    unified_diff,
    versions,
    with_lines,
    zone,
)

YAML = """\
name: x
plan:
  - id: a
    action: log
  - id: b
    action: nope
    params: {message: hi}
"""


def test_session_round_trips_and_a_tampered_or_foreign_cookie_is_a_fresh_session() -> None:
    codec = SessionCodec(Fernet.generate_key())
    session = Session(timezone="Europe/Zurich")
    session.add(Workspace("default", "tok-1", "user:a", "owner"))
    session.add(Workspace("other", "tok-2", "user:a", "viewer"))
    session.say("ok", "saved")
    cookie = codec.dumps(session)
    assert "tok-1" not in cookie

    back = codec.loads(cookie)
    assert back.workspace is not None and back.workspace.workspace_id == "other"
    assert [w.token for w in back.workspaces] == ["tok-1", "tok-2"]
    assert back.csrf == session.csrf and back.take_flash() == [("ok", "saved")]

    tampered = cookie[:-6] + ("A" if cookie[-6] != "A" else "B") + cookie[-5:]
    assert not codec.loads(tampered).signed_in
    assert not SessionCodec(Fernet.generate_key()).loads(cookie).signed_in
    assert not codec.loads("").signed_in


def test_csrf_check_needs_the_sessions_token() -> None:
    session = Session()
    assert session.check_csrf(session.csrf)
    assert not session.check_csrf(None)
    assert not session.check_csrf("")
    assert not session.check_csrf(session.csrf + "x")


def test_field_paths_map_to_their_yaml_lines() -> None:
    assert line_of(YAML, "plan[1].action") == 6
    assert line_of(YAML, "plan[1]") == 5
    assert line_of(YAML, "name") == 1
    assert line_of(YAML, "plan[7].action") == 2  # as deep as the path exists
    assert with_lines(YAML, [("definition.plan[1].action", "unknown action")]) == [
        ("plan[1].action", "unknown action", 6)
    ]


def test_parse_definition_reports_unknown_keys_and_bad_yaml_with_lines() -> None:
    definition, violations = parse_definition(YAML)
    assert definition is not None and not violations
    _, unknown = parse_definition(YAML.replace("params:", "parms:"))
    assert unknown[0][0] == "plan[1].parms" and unknown[0][2] == 7
    assert "did you mean 'params'" in unknown[0][1]
    _, bad = parse_definition("name: [unclosed\nplan: []\n")
    assert bad[0][0] == "yaml" and bad[0][2] is not None
    _, not_mapping = parse_definition("- a\n")
    assert not_mapping[0][1].startswith("must be a mapping")


def test_inputs_form_follows_the_schema_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "who": {"type": "string"},
            "n": {"type": "integer"},
            "ratio": {"type": "number"},
            "loud": {"type": "boolean"},
            "mode": {"enum": ["a", "b"]},
            "level": {"enum": [1, 2]},
            "tags": {"type": "array"},
            "note": {"type": "string"},
        },
        "required": ["who"],
    }
    fields = input_fields(schema)
    assert [(f.name, f.kind, f.required) for f in fields][:2] == [
        ("who", "text", True),
        ("n", "integer", False),
    ]
    form = {"input.who": "Ada", "input.n": "3", "input.ratio": "0.5", "input.loud": "on",
            "input.mode": "b", "input.level": "2", "input.tags": '["x"]',
            "input.note": ""}  # fmt: skip
    assert inputs_from_form(fields, form) == {
        "who": "Ada", "n": 3, "ratio": 0.5, "loud": True, "mode": "b", "level": 2, "tags": ["x"]
    }  # fmt: skip
    with pytest.raises(FormError, match=r"inputs\.n"):
        inputs_from_form(fields, {"input.n": "three"})
    with pytest.raises(FormError, match="mode"):
        inputs_from_form(fields, {"input.mode": "c"})


def test_audit_query_keeps_the_filters_and_reads_times_in_the_users_zone() -> None:
    zurich = zone("Europe/Zurich")
    request = audit_request(
        {"actor": " user:alice ", "action": "secret.set", "target_type": "secret",
         "target": "API_KEY", "since": "2026-07-01T10:00", "until": "2026-12-01T10:00",
         "page_token": "p2"},
        zurich,
    )  # fmt: skip
    assert (request.actor, request.action, request.target_type, request.target_id) == (
        "user:alice", "secret.set", "secret", "API_KEY"
    )  # fmt: skip
    assert request.page_token == "p2" and request.page_size == AUDIT_PAGE_SIZE
    # Summer time then winter time in Zurich.
    assert request.start_time.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)
    assert request.end_time.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    empty = audit_request({"actor": "", "since": ""}, zurich)
    assert not empty.HasField("start_time") and not empty.actor
    with pytest.raises(FormError, match="not a date"):
        audit_request({"until": "yesterday"}, zurich)


def test_next_page_keeps_filters_and_replaces_the_token() -> None:
    url = next_page("/ui/audit", {"action": "run.cancel", "actor": "", "page_token": "p1"}, "p2")
    parsed = urlparse(url)
    assert parsed.path == "/ui/audit"
    assert parse_qs(parsed.query) == {"action": ["run.cancel"], "page_token": ["p2"]}
    assert next_page("/ui/audit", {"action": "run.cancel"}, "") == ""


def test_versions_before_and_after() -> None:
    assert versions(2, 3) == "2 → 3"
    assert versions(0, 1) == "— → 1"
    assert versions(4, 0) == "4 → —"
    assert versions(0, 0) == ""


def test_a_runs_timeline_lists_the_tool_calls_of_an_agent_step_escaped() -> None:
    from autom.api.executor.v1 import executor_pb2 as pb
    from autom.core.protoconv import py_to_value
    from autom.gateway.console.app import Console

    console = Console(
        lambda address: None,
        session_key=None,
        timeout=1.0,
        draft_timeout=1.0,
    )
    call = pb.ToolCall(call_n=1, name="http_request", status="succeeded", duration_ms=12)
    call.finish_time.seconds = 1
    call.result.CopyFrom(py_to_value({"title": "<script>x</script> {{ 7 * 7 }}"}))
    refused = pb.ToolCall(
        call_n=2,
        name="emit_event",
        status="refused",
        error=pb.ErrorDetail(type="ToolNotDeclared", message="not declared"),
    )
    run = pb.Run(
        id="r1",
        status=pb.RUN_STATUS_SUCCEEDED,
        steps=[
            pb.StepRun(
                step_id="ask",
                action="agent_task",
                status=pb.STEP_STATUS_SUCCEEDED,
                tool_calls=[call, refused],
            )
        ],
    )
    html = console.env.get_template("_timeline.html").render(run=run)
    assert "Tool calls (2)" in html
    assert "<code>http_request</code>" in html and "12 ms" in html
    assert "ToolNotDeclared" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "{{ 7 * 7 }}" in html  # data, not rendered


def test_a_definitions_yaml_lists_free_form_keys_sorted_so_two_renderings_match() -> None:
    raw = {
        "name": "x",
        "triggers": [{"type": "schedule", "config": {"timezone": "UTC", "cron": "0 8 * * *"}}],
        "plan": [{"id": "f", "action": "log", "params": {"message": "hi", "level": "info"}}],
    }
    # A proto map's order varies from process to process: a diff of one definition against
    # itself showed moved lines.
    one = json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
    other = definition_pb2.AutomationDefinition.FromString(one.SerializeToString())
    text = definition_to_yaml(one)
    assert text.index("cron:") < text.index("timezone:")
    assert text.index("level:") < text.index("message:")
    assert text.index("name:") < text.index("triggers:") < text.index("plan:")
    assert not unified_diff(text, definition_to_yaml(other), "a", "b")
