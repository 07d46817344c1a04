"""Path templates, routing and request decoding without a network."""

from __future__ import annotations

import pytest

from autom.api.definitions.v1 import definitions_service_pb2
from autom.api.drafter.v1 import drafter_service_pb2
from autom.gateway.app import build_routes
from autom.gateway.codec import RequestError, check_message_json, decode_request
from autom.gateway.comments import parse_proto_comments
from autom.gateway.routing import (
    Binding,
    MethodNotAllowed,
    Route,
    Router,
    TemplateError,
    parse_template,
)


def test_template_with_nested_field_pattern_and_verb() -> None:
    t = parse_template("/v1/{parent.name=workspaces/*/automations/*}/runs/{run.id}:cancel")
    assert t.verb == "cancel"
    assert [v.field_path for v in t.variables] == [("parent", "name"), ("run", "id")]
    assert t.openapi_path() == "/v1/{parent.name}/runs/{run.id}:cancel"
    assert t.match("/v1/workspaces/w1/automations/a%20b/runs/r%2F1") == {
        "parent.name": "workspaces/w1/automations/a b",
        "run.id": "r/1",
    }
    assert t.match("/v1/workspaces/w1/runs/r1") is None


def test_template_double_wildcard_keeps_encoded_slashes() -> None:
    t = parse_template("/v1/{path=files/**}")
    assert t.match("/v1/files/a/b%2Fc") == {"path": "files/a/b%2Fc"}


@pytest.mark.parametrize("bad", ["v1/x", "/v1/{x", "/v1/{1x}", "/v1//x", "/v1/{x}y", "/v1/x:"])
def test_malformed_templates_are_rejected(bad: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(bad)


def test_routes_are_built_from_descriptors_only() -> None:
    routes = build_routes()
    # 43 + GET /v1/audit (ListAuditEvents) + the four webhook/quota routes + the three
    # /v1/mcp-servers routes.
    assert len(routes) == 51
    assert {r.binding.body for r in routes} == {"", "*"}
    (watch,) = [r for r in routes if r.method.name == "WatchRun"]
    assert watch.streaming and watch.binding.template.verb == "watch"


def test_router_prefers_verbs_and_reports_allowed_methods() -> None:
    router = Router(build_routes())
    m = router.match("POST", "/v1/automations:validate")
    assert m is not None and m.route.method.name == "ValidateDefinition"
    m = router.match("GET", "/v1/audit")
    assert m is not None and m.route.method.name == "ListAuditEvents"
    m = router.match("PUT", "/v1/mcp-servers/github")
    assert m is not None and m.route.method.name == "RegisterMcpServer"
    assert m.path_params == {"name": "github"}
    m = router.match("POST", "/v1/schedules/a:trigger_0:trigger")
    assert m is not None and m.route.method.name == "TriggerNow"
    assert m.path_params == {"schedule_id": "a:trigger_0"}
    m = router.match("GET", "/v1/schedules/a:trigger_0")
    assert m is not None and m.route.method.name == "DescribeSchedule"
    with pytest.raises(MethodNotAllowed) as info:
        router.match("DELETE", "/v1/runs/r1:cancel")
    assert info.value.allowed == ["POST"]
    assert router.match("GET", "/v2/nothing") is None


def _route(method_name: str, body: str, template: str) -> Route:
    (service,) = drafter_service_pb2.DESCRIPTOR.services_by_name.values()
    method = service.methods_by_name[method_name]
    (real,) = [r for r in build_routes() if r.method.full_name == method.full_name]
    return Route(
        service_key="drafter",
        method=method,
        binding=Binding("GET", parse_template(template), body, ""),
        request_cls=real.request_cls,
        response_cls=real.response_cls,
        protected=True,
    )


def test_query_string_fills_nested_and_repeated_fields() -> None:
    route = _route("ApproveDraft", "", "/v1/drafts/{draft_id}")
    request = decode_request(
        route,
        b"",
        {"draft_id": "d1"},
        [
            ("expectedRevision", "3"),
            ("definition.name", "nightly"),
            ("definition.metadata.tags", "a"),
            ("definition.metadata.tags", "b"),
            ("definition.metadata.created_from_nl", "true"),
        ],
    )
    assert request.draft_id == "d1"
    assert request.expected_revision == 3
    assert request.definition.name == "nightly"
    assert list(request.definition.metadata.tags) == ["a", "b"]
    assert request.definition.metadata.created_from_nl is True


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ([("expectedRevision", "1"), ("expectedRevision", "2")], "expectedRevision"),
        ([("draftId", "other")], "draftId"),
        ([("definition.metadata.extras", "x")], "definition.metadata.extras"),
        ([("definition.plan.id", "x")], "definition.plan.id"),
        ([("expectedRevision", "99999999999")], "expectedRevision"),
        ([("definition.metadata.createdFromNl", "yes")], "definition.metadata.createdFromNl"),
    ],
)
def test_bad_query_parameters_name_the_parameter(query: list[tuple[str, str]], field: str) -> None:
    route = _route("ApproveDraft", "", "/v1/drafts/{draft_id}")
    with pytest.raises(RequestError) as info:
        decode_request(route, b"", {"draft_id": "d1"}, query)
    assert [v.field for v in info.value.violations] == [field]


def test_field_body_maps_the_body_to_one_field() -> None:
    route = _route("ApproveDraft", "definition", "/v1/drafts/{draft_id}")
    request = decode_request(
        route,
        b'{"name": "x", "plan": [{"id": "a"}]}',
        {"draft_id": "d1"},
        [("expectedRevision", "2")],
    )
    assert request.definition.plan[0].id == "a"
    assert request.expected_revision == 2


def test_strict_json_check_matches_the_documented_schema() -> None:
    desc = definitions_service_pb2.ListAutomationsRequest.DESCRIPTOR
    assert check_message_json({"pageSize": 5, "status": "AUTOMATION_STATUS_ACTIVE"}, desc) == []
    assert check_message_json({"page_size": 5, "status": 2}, desc) == []
    bad = check_message_json(
        {"pageSize": "5", "status": 9, "tag": 1, "page_size": 1, "namePrefix": None}, desc
    )
    assert [v.field for v in bad] == ["pageSize", "status", "tag", "page_size", "namePrefix"]
    get = definitions_service_pb2.GetAutomationRequest.DESCRIPTOR
    assert check_message_json({"version": "12"}, get) == []
    assert check_message_json({"version": 12}, get) == []
    assert [v.field for v in check_message_json({"version": "1.5"}, get)] == ["version"]


def test_comment_parser_reads_nested_messages_enums_and_rpcs() -> None:
    text = """
syntax = "proto3";
package demo.v1;

// The service.
service Things {
  // Gets a thing.
  rpc GetThing(GetThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/things/{id}"};  // trailing, ignored
  }
}

// A thing.
message Thing {
  // Its id.
  string id = 1;
  // Inner part.
  message Part {
    // Part size.
    int32 size = 1;
  }
  oneof kind {
    // A label.
    string label = 2;
  }
  map<string, string> attrs = 3;
}

// Colours.
enum Colour {
  // Nothing.
  COLOUR_UNSPECIFIED = 0;
}
"""
    comments = parse_proto_comments(text)
    assert comments == {
        "demo.v1.Things": "The service.",
        "demo.v1.Things.GetThing": "Gets a thing.",
        "demo.v1.Thing": "A thing.",
        "demo.v1.Thing.id": "Its id.",
        "demo.v1.Thing.Part": "Inner part.",
        "demo.v1.Thing.Part.size": "Part size.",
        "demo.v1.Thing.label": "A label.",
        "demo.v1.Colour": "Colours.",
        "demo.v1.Colour.COLOUR_UNSPECIFIED": "Nothing.",
    }
