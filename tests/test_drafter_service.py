"""Drafter against the real definitions service and a scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.api.drafter.v1 import drafter_pb2
from autom.api.drafter.v1 import drafter_service_pb2 as pb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as pb_grpc
from autom.core.auth import Role, TokenSigner
from autom.core.grpcserver import GrpcApp, bearer
from autom.definitions.app import build_app as build_definitions
from autom.definitions.settings import DefinitionsSettings
from autom.devstack.testing import service_keys
from autom.drafter.app import build_app as build_drafter
from autom.drafter.convert import json_to_definition
from autom.drafter.domain.examples import EXAMPLES
from autom.drafter.settings import DrafterSettings
from autom.drafter.testing import ScriptedLLM

MODEL = "openai/gpt-4o-mini"  # priced in litellm's bundled map, so cost is non-zero

VALID: dict[str, Any] = {
    "name": "berlin-status-post",
    "description": "Post the status page every weekday morning",
    "triggers": [
        {"type": "schedule", "config": {"cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"}}
    ],
    "plan": [
        {
            "id": "fetch",
            "action": "http_request",
            "params": {"method": "GET", "url": "https://status.example.com/api"},
        },
        {
            "id": "post",
            "action": "http_request",
            "when": "{{ steps.fetch.output.status == 200 }}",
            "params": {
                "method": "POST",
                "url": "{{ secrets.WEBHOOK_URL }}",
                "json": {"text": "{{ steps.fetch.output.json | tojson }}"},
            },
        },
    ],
}


def _invalid_twice() -> dict[str, Any]:
    """VALID with two violations: a bad cron and an unknown action."""
    bad = copy.deepcopy(VALID)
    bad["triggers"][0]["config"]["cron"] = "0 25 * * *"
    bad["plan"][0]["action"] = "fetch_url"
    return bad


@dataclass
class Stack:
    """Running definitions + drafter apps, the scripted model and callers' tokens."""

    llm: ScriptedLLM
    drafter: pb_grpc.DrafterServiceStub
    definitions: dpb_grpc.DefinitionsServiceStub
    owner: tuple[tuple[str, str]]
    editor: tuple[tuple[str, str]]
    viewer: tuple[tuple[str, str]]


async def _start_drafter(
    database_url: str, nats_url: str, signing_key: str, definitions_addr: str, **overrides: Any
) -> GrpcApp:
    fields: dict[str, Any] = {
        "database_url": database_url,
        "nats_url": nats_url,
        **service_keys("drafter", signing_key),
        "grpc_port": 0,
        "definitions_addr": definitions_addr,
        # Nothing listens there: previews must fall back to autom.schedule.
        "scheduler_addr": "127.0.0.1:1",
        "model": MODEL,
        "api_key": "test",
        "num_retries": 0,
        # Generous: the first model call of a process imports much of litellm and openai,
        # which takes seconds on a loaded machine (timeouts are tested with their own value).
        "timeout_seconds": 30.0,
        **overrides,
    }
    app = await build_drafter(DrafterSettings(**fields))
    await app.start()
    return app


@pytest.fixture
async def definitions_app(
    database_url: str, nats_url: str, signing_key: str
) -> AsyncIterator[GrpcApp]:
    """The real definitions service, in-process."""
    app = await build_definitions(
        DefinitionsSettings(
            database_url=database_url,
            nats_url=nats_url,
            grpc_port=0,
            **service_keys("definitions", signing_key),
        )
    )
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    """The scripted model server."""
    async with ScriptedLLM() as server:
        yield server


@pytest.fixture
async def stack(
    database_url: str,
    nats_url: str,
    signing_key: str,
    definitions_app: GrpcApp,
    llm: ScriptedLLM,
) -> AsyncIterator[Stack]:
    """Definitions and drafter wired together, with owner, editor and viewer tokens."""
    app = await _start_drafter(
        database_url, nats_url, signing_key, definitions_app.address, api_base=llm.url
    )
    signer = TokenSigner(signing_key)

    def token(subject: str, role: Role) -> tuple[tuple[str, str]]:
        return bearer(signer.issue(subject=subject, workspace_id="default", role=role)[0])

    drafter_channel = grpc.aio.insecure_channel(app.address)
    definitions_channel = grpc.aio.insecure_channel(definitions_app.address)
    yield Stack(
        llm=llm,
        drafter=pb_grpc.DrafterServiceStub(drafter_channel),
        definitions=dpb_grpc.DefinitionsServiceStub(definitions_channel),
        owner=token("user:owner", Role.OWNER),
        editor=token("user:editor", Role.EDITOR),
        viewer=token("user:viewer", Role.VIEWER),
    )
    await drafter_channel.close()
    await definitions_channel.close()
    await app.stop()


def _error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError("no ErrorInfo in the status details")


async def _draft(s: Stack, intent: str = "every weekday at 8 post our status", **kw: Any) -> Any:
    resp = await s.drafter.DraftAutomation(
        pb.DraftAutomationRequest(intent=intent, timezone="Europe/Berlin", **kw),
        metadata=s.owner,
    )
    return resp.draft


async def _automations(s: Stack) -> list[Any]:
    resp = await s.definitions.ListAutomations(dpb.ListAutomationsRequest(), metadata=s.owner)
    return list(resp.automations)


async def test_few_shot_examples_pass_validate_definition(stack: Stack) -> None:
    drafted = [ex for ex in EXAMPLES if "definition" in ex.reply]
    assert len(drafted) >= 3
    actions = set()
    for ex in drafted:
        definition, shape = json_to_definition(ex.reply["definition"])
        assert definition is not None, shape
        resp = await stack.definitions.ValidateDefinition(
            dpb.ValidateDefinitionRequest(definition=definition), metadata=stack.owner
        )
        assert resp.valid, [(v.field, v.description) for v in resp.violations]
        actions |= {s.action for s in definition.plan}
        assert definition.triggers[0].type == "schedule"
    assert {"http_request", "agent_task"} <= actions
    assert any(s.when for ex in drafted for s in json_to_definition(ex.reply["definition"])[0].plan)  # type: ignore[union-attr]


async def test_valid_draft_is_pending_with_preview_and_usage(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID, "message": "Set the secret WEBHOOK_URL."})
    draft = await _draft(stack, request_id="r-1")
    assert draft.status == drafter_pb2.DRAFT_STATUS_PENDING
    rev = draft.revisions[-1]
    assert rev.number == 1 and rev.definition.name == "berlin-status-post"
    assert rev.message == "Set the secret WEBHOOK_URL."
    trigger = rev.preview.triggers[0]
    assert "Europe/Berlin" in trigger.description
    assert len(trigger.next_fire_times) == 3
    assert [(s.id, s.action) for s in rev.preview.steps] == [
        ("fetch", "http_request"),
        ("post", "http_request"),
    ]
    assert rev.preview.steps[1].when
    assert '"name": "berlin-status-post"' in rev.preview.json
    assert rev.usage.calls == 1
    assert rev.usage.prompt_tokens == 100 and rev.usage.completion_tokens == 50
    assert rev.usage.cost_usd > 0
    # The system prompt is grounded in the live schema and catalog, time and zone.
    request = stack.llm.requests[0]
    system = request["messages"][0]["content"]
    assert request["messages"][0]["role"] == "system"
    for needle in ("agent_task", "http_request", "schedule", "Europe/Berlin", "out_of_scope"):
        assert needle in system
    assert request["response_format"] == {"type": "json_object"}
    assert request["messages"][-1] == {
        "role": "user",
        "content": "every weekday at 8 post our status",
    }
    # Same request_id: the same draft, no second model call.
    again = await _draft(stack, request_id="r-1")
    assert again.id == draft.id and len(stack.llm.requests) == 1
    got = await stack.drafter.GetDraft(pb.GetDraftRequest(draft_id=draft.id), metadata=stack.viewer)
    assert got.draft.revisions[0].preview.triggers[0].next_fire_times


async def test_two_violations_are_repaired_in_one_round(stack: Stack) -> None:
    stack.llm.reply({"definition": _invalid_twice()})
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    assert draft.status == drafter_pb2.DRAFT_STATUS_PENDING
    assert draft.revisions[-1].usage.calls == 2
    repair = stack.llm.messages(1)[-1]
    assert repair["role"] == "user"
    assert "triggers[0].config.cron" in repair["content"]
    assert "plan[0].action" in repair["content"]
    assert stack.llm.messages(1)[-2]["role"] == "assistant"


async def test_wrong_shape_becomes_violations_and_invalid_after_two_repairs(stack: Stack) -> None:
    shaped = copy.deepcopy(VALID)
    shaped["colour"] = "blue"
    shaped["plan"][0]["params"] = "GET https://x"
    for _ in range(3):
        stack.llm.reply({"definition": shaped})
    draft = await _draft(stack)
    assert draft.status == drafter_pb2.DRAFT_STATUS_INVALID
    rev = draft.revisions[-1]
    assert {v.field for v in rev.violations} == {"colour", "plan[0].params"}
    assert rev.usage.calls == 3
    assert rev.error.type == "validation_error"
    assert '"colour": "blue"' in rev.preview.json
    assert "colour: unknown field" in stack.llm.messages(1)[-1]["content"]


async def test_clarification_then_refinement_yields_pending(stack: Stack) -> None:
    stack.llm.reply({"questions": ["Which URL should I fetch?", "Where should I post it?"]})
    draft = await _draft(stack, intent="send me a report")
    assert draft.status == drafter_pb2.DRAFT_STATUS_NEEDS_CLARIFICATION
    assert list(draft.revisions[0].questions) == [
        "Which URL should I fetch?",
        "Where should I post it?",
    ]
    stack.llm.reply({"definition": VALID})
    refined = await stack.drafter.RefineDraft(
        pb.RefineDraftRequest(
            draft_id=draft.id, instruction="https://status.example.com/api, to WEBHOOK_URL"
        ),
        metadata=stack.editor,
    )
    assert refined.draft.status == drafter_pb2.DRAFT_STATUS_PENDING
    assert [r.number for r in refined.draft.revisions] == [1, 2]
    # The conversation is kept: intent, the questions, then the answer.
    sent = stack.llm.messages(1)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "send me a report"
    assert "Which URL" in sent[2]["content"]


async def test_out_of_scope(stack: Stack) -> None:
    stack.llm.reply({"out_of_scope": "That is a question, not an automation."})
    draft = await _draft(stack, intent="what is the capital of France?")
    assert draft.status == drafter_pb2.DRAFT_STATUS_OUT_OF_SCOPE
    assert draft.revisions[0].message == "That is a question, not an automation."


async def test_approve_twice_creates_exactly_one_automation(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    request = pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=1)
    first = await stack.drafter.ApproveDraft(request, metadata=stack.editor)
    second = await stack.drafter.ApproveDraft(request, metadata=stack.editor)
    assert first.automation_id and first.automation_id == second.automation_id
    assert first.automation_version == 1
    assert first.draft.status == drafter_pb2.DRAFT_STATUS_APPROVED
    automations = await _automations(stack)
    assert [a.id for a in automations] == [first.automation_id]
    metadata = automations[0].definition.metadata
    assert metadata.created_from_nl and metadata.draft_id == draft.id
    assert automations[0].created_by == "user:editor"  # created as the caller


async def test_concurrent_approvals_create_one_automation(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    request = pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=1)
    results = await asyncio.gather(
        *(stack.drafter.ApproveDraft(request, metadata=stack.owner) for _ in range(4))
    )
    assert len({r.automation_id for r in results}) == 1
    assert len(await _automations(stack)) == 1


async def test_approve_checks_expected_revision(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.ApproveDraft(
            pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=2), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert await _automations(stack) == []


async def test_approve_with_edited_definition(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    edited, _ = json_to_definition({**VALID, "name": "edited-name"})
    assert edited is not None
    resp = await stack.drafter.ApproveDraft(
        pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=1, definition=edited),
        metadata=stack.owner,
    )
    automations = await _automations(stack)
    assert [a.name for a in automations] == ["edited-name"]
    assert resp.draft.revisions[-1].definition.name == "edited-name"


async def test_viewer_cannot_approve(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.ApproveDraft(
            pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=1), metadata=stack.viewer
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await _automations(stack) == []


async def test_reject_leaves_no_automation_and_cannot_be_approved(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    rejected = await stack.drafter.RejectDraft(
        pb.RejectDraftRequest(draft_id=draft.id, reason="not what I meant"), metadata=stack.owner
    )
    assert rejected.draft.status == drafter_pb2.DRAFT_STATUS_REJECTED
    assert rejected.draft.reject_reason == "not what I meant"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.ApproveDraft(
            pb.ApproveDraftRequest(draft_id=draft.id), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await _automations(stack) == []
    listed = await stack.drafter.ListDrafts(
        pb.ListDraftsRequest(status=drafter_pb2.DRAFT_STATUS_REJECTED), metadata=stack.viewer
    )
    assert [d.id for d in listed.drafts] == [draft.id]


async def test_change_draft_updates_from_its_base_version(stack: Stack) -> None:
    base, _ = json_to_definition(VALID)
    created = await stack.definitions.CreateAutomation(
        dpb.CreateAutomationRequest(request_id="c1", definition=base), metadata=stack.owner
    )
    automation_id = created.automation.id
    changed = copy.deepcopy(VALID)
    changed["triggers"][0]["config"]["cron"] = "0 10 * * 1-5"
    stack.llm.reply({"definition": changed})
    draft = await _draft(stack, intent="run it at 10 instead", automation_id=automation_id)
    assert draft.base_automation_id == automation_id and draft.base_version == 1
    changes = list(draft.revisions[-1].preview.changes)
    assert any("cron" in c and "0 10 * * 1-5" in c for c in changes), changes
    # The current definition is in the prompt so the model changes rather than rewrites.
    assert "0 8 * * 1-5" in stack.llm.messages(0)[0]["content"]
    resp = await stack.drafter.ApproveDraft(
        pb.ApproveDraftRequest(draft_id=draft.id, expected_revision=1), metadata=stack.owner
    )
    assert resp.automation_id == automation_id and resp.automation_version == 2


async def test_change_draft_approval_aborts_when_the_automation_moved(stack: Stack) -> None:
    base, _ = json_to_definition(VALID)
    created = await stack.definitions.CreateAutomation(
        dpb.CreateAutomationRequest(request_id="c1", definition=base), metadata=stack.owner
    )
    automation_id = created.automation.id
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack, intent="rename nothing", automation_id=automation_id)
    moved, _ = json_to_definition({**VALID, "description": "changed meanwhile"})
    await stack.definitions.UpdateAutomation(
        dpb.UpdateAutomationRequest(
            request_id="u1", automation_id=automation_id, version=1, definition=moved
        ),
        metadata=stack.owner,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.ApproveDraft(
            pb.ApproveDraftRequest(draft_id=draft.id), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert "refine the draft" in (err.value.details() or "")
    # Refining rebases the change onto the current version (item 17): approval then works.
    rebased = {**VALID, "description": "changed meanwhile", "goal": "rebased"}
    stack.llm.reply({"definition": rebased})
    refined = (
        await stack.drafter.RefineDraft(
            pb.RefineDraftRequest(draft_id=draft.id, instruction="rebase"), metadata=stack.owner
        )
    ).draft
    assert refined.base_version == 2
    assert "changed meanwhile" in stack.llm.messages(-1)[0]["content"]  # the new base
    assert "version 2" in stack.llm.messages(-1)[-1]["content"]
    approved = await stack.drafter.ApproveDraft(
        pb.ApproveDraftRequest(draft_id=draft.id), metadata=stack.owner
    )
    assert approved.automation_id == automation_id and approved.automation_version == 3


@pytest.mark.parametrize(
    ("script", "code", "reason"),
    [
        ("garbage", grpc.StatusCode.UNAVAILABLE, "llm_parse_error"),
        ("html", grpc.StatusCode.UNAVAILABLE, "llm_parse_error"),
        ("drop", grpc.StatusCode.UNAVAILABLE, "connection_error"),
        ("429", grpc.StatusCode.RESOURCE_EXHAUSTED, "llm_rate_limit"),
        ("401", grpc.StatusCode.FAILED_PRECONDITION, "auth_error"),
        ("500", grpc.StatusCode.UNAVAILABLE, "provider_error"),
        ("slow", grpc.StatusCode.DEADLINE_EXCEEDED, "llm_timeout"),
        ("context", grpc.StatusCode.INVALID_ARGUMENT, "context_window_exceeded"),
        ("404", grpc.StatusCode.FAILED_PRECONDITION, "not_configured"),
    ],
)
async def test_failure_modes_map_to_type_code_and_sentence(
    database_url: str,
    nats_url: str,
    signing_key: str,
    definitions_app: GrpcApp,
    llm: ScriptedLLM,
    script: str,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    app = await _start_drafter(
        database_url,
        nats_url,
        signing_key,
        definitions_app.address,
        api_base=llm.url,
        timeout_seconds=0.5,
    )
    token = bearer(
        TokenSigner(signing_key).issue(subject="u", workspace_id="default", role=Role.OWNER)[0]
    )
    if script == "garbage":
        # Twice: the first malformed answer gets a repair round.
        llm.reply("Sure! Here is your automation: it runs every day.")
        llm.reply("It runs every day, as I said.")
    elif script == "html":
        llm.raw("<html><body>502 Bad Gateway</body></html>")
    elif script == "drop":
        llm.drop()
    elif script == "slow":
        llm.slow(3.0, {"definition": VALID})
    elif script == "context":
        llm.error(
            400,
            "This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens. Please reduce the length of the messages.",
        )
    else:
        llm.error(int(script), "sk-secret-provider-detail")
    try:
        async with grpc.aio.insecure_channel(app.address) as channel:
            stub = pb_grpc.DrafterServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.DraftAutomation(
                    pb.DraftAutomationRequest(intent="post our status", request_id="f1"),
                    metadata=token,
                )
            assert err.value.code() == code
            assert _error_info(err.value).reason == reason
            message = err.value.details() or ""
            assert message and "sk-secret" not in message and "internal" not in message
            # The failure is recorded on a stored, typed revision.
            listed = await stub.ListDrafts(pb.ListDraftsRequest(), metadata=token)
            [draft] = listed.drafts
            assert draft.status == drafter_pb2.DRAFT_STATUS_FAILED
            assert draft.revisions[-1].error.type == reason
            assert draft.revisions[-1].error.message == message
            # The calls the failed turn made are recorded with it.
            assert draft.revisions[-1].usage.calls == (2 if script == "garbage" else 1)
            # Retrying the same request tries again and can succeed.
            llm.reply({"definition": VALID})
            retried = await stub.DraftAutomation(
                pb.DraftAutomationRequest(intent="post our status", request_id="f1"),
                metadata=token,
            )
            assert retried.draft.id == draft.id
            assert retried.draft.status == drafter_pb2.DRAFT_STATUS_PENDING
            assert [m["role"] for m in llm.messages(-1)] == ["system", "user"]
    finally:
        await app.stop()


async def test_no_model_configured_is_failed_precondition(
    database_url: str,
    nats_url: str,
    signing_key: str,
    definitions_app: GrpcApp,
    llm: ScriptedLLM,
) -> None:
    app = await _start_drafter(
        database_url, nats_url, signing_key, definitions_app.address, model=None
    )
    token = bearer(
        TokenSigner(signing_key).issue(subject="u", workspace_id="default", role=Role.OWNER)[0]
    )
    try:
        async with grpc.aio.insecure_channel(app.address) as channel:
            stub = pb_grpc.DrafterServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.DraftAutomation(
                    pb.DraftAutomationRequest(intent="post our status"), metadata=token
                )
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert _error_info(err.value).reason == "not_configured"
            assert "AUTOM_DRAFTER_MODEL" in (err.value.details() or "")
            assert llm.requests == []
    finally:
        await app.stop()


async def test_invalid_draft_refined_to_pending(stack: Stack) -> None:
    for _ in range(3):
        stack.llm.reply({"definition": _invalid_twice()})
    draft = await _draft(stack)
    assert draft.status == drafter_pb2.DRAFT_STATUS_INVALID
    assert len(draft.revisions[0].violations) == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.ApproveDraft(
            pb.ApproveDraftRequest(draft_id=draft.id), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stack.llm.reply({"definition": VALID})
    refined = await stack.drafter.RefineDraft(
        pb.RefineDraftRequest(draft_id=draft.id, instruction="use http_request", request_id="x"),
        metadata=stack.owner,
    )
    assert refined.draft.status == drafter_pb2.DRAFT_STATUS_PENDING
    # The whole conversation, repair rounds included, is replayed.
    assert [m["role"] for m in stack.llm.messages(-1)] == ["system"] + ["user", "assistant"] * 3 + [
        "user"
    ]
    again = await stack.drafter.RefineDraft(
        pb.RefineDraftRequest(draft_id=draft.id, instruction="use http_request", request_id="x"),
        metadata=stack.owner,
    )
    assert len(again.draft.revisions) == 2 and stack.llm.pending == 0


async def test_approved_draft_cannot_be_refined_or_rejected(stack: Stack) -> None:
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    await stack.drafter.ApproveDraft(
        pb.ApproveDraftRequest(draft_id=draft.id), metadata=stack.owner
    )
    for call in (
        stack.drafter.RefineDraft(
            pb.RefineDraftRequest(draft_id=draft.id, instruction="more"), metadata=stack.owner
        ),
        stack.drafter.RejectDraft(pb.RejectDraftRequest(draft_id=draft.id), metadata=stack.owner),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_requests_and_access(stack: Stack, signing_key: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.DraftAutomation(
            pb.DraftAutomationRequest(intent="  "), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.DraftAutomation(
            pb.DraftAutomationRequest(intent="x", timezone="Mars/Olympus"), metadata=stack.owner
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.DraftAutomation(
            pb.DraftAutomationRequest(intent="x"), metadata=stack.viewer
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    other = bearer(
        TokenSigner(signing_key).issue(subject="user:z", workspace_id="other", role=Role.OWNER)[0]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.drafter.GetDraft(pb.GetDraftRequest(draft_id=draft.id), metadata=other)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stack.drafter.ListDrafts(pb.ListDraftsRequest(), metadata=other)
    assert list(listed.drafts) == []


async def test_list_drafts_pages_newest_first(stack: Stack) -> None:
    ids = []
    for i in range(3):
        stack.llm.reply({"questions": [f"q{i}?"]})
        ids.append((await _draft(stack, intent=f"thing {i}")).id)
    stack.llm.reply({"questions": ["again?"]})
    await stack.drafter.RefineDraft(
        pb.RefineDraftRequest(draft_id=ids[2], instruction="more"), metadata=stack.owner
    )
    first = await stack.drafter.ListDrafts(pb.ListDraftsRequest(page_size=2), metadata=stack.viewer)
    assert [d.id for d in first.drafts] == ids[::-1][:2] and first.next_page_token
    assert [r.number for r in first.drafts[0].revisions] == [1, 2]
    rest = await stack.drafter.ListDrafts(
        pb.ListDraftsRequest(page_size=2, page_token=first.next_page_token), metadata=stack.viewer
    )
    assert [d.id for d in rest.drafts] == [ids[0]] and not rest.next_page_token


async def test_definitions_unreachable_is_unavailable(
    database_url: str, nats_url: str, signing_key: str, llm: ScriptedLLM
) -> None:
    app = await _start_drafter(database_url, nats_url, signing_key, "127.0.0.1:1", api_base=llm.url)
    token = bearer(
        TokenSigner(signing_key).issue(subject="u", workspace_id="default", role=Role.OWNER)[0]
    )
    try:
        async with grpc.aio.insecure_channel(app.address) as channel:
            stub = pb_grpc.DrafterServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.DraftAutomation(pb.DraftAutomationRequest(intent="x"), metadata=token)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "definitions" in (err.value.details() or "")
    finally:
        await app.stop()


async def test_refine_retried_with_its_request_id_after_failures(
    database_url: str,
    nats_url: str,
    signing_key: str,
    definitions_app: GrpcApp,
    llm: ScriptedLLM,
) -> None:
    app = await _start_drafter(
        database_url, nats_url, signing_key, definitions_app.address, api_base=llm.url
    )
    token = bearer(
        TokenSigner(signing_key).issue(subject="u", workspace_id="default", role=Role.OWNER)[0]
    )
    try:
        async with grpc.aio.insecure_channel(app.address) as channel:
            stub = pb_grpc.DrafterServiceStub(channel)
            llm.reply({"questions": ["Where?"]})
            draft = (
                await stub.DraftAutomation(pb.DraftAutomationRequest(intent="x"), metadata=token)
            ).draft
            refine = pb.RefineDraftRequest(draft_id=draft.id, instruction="here", request_id="r")
            for _ in range(2):
                llm.error(429)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.RefineDraft(refine, metadata=token)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            llm.reply({"definition": VALID})
            done = (await stub.RefineDraft(refine, metadata=token)).draft
            assert done.status == drafter_pb2.DRAFT_STATUS_PENDING
            assert [r.instruction for r in done.revisions] == ["x", "here", "here", "here"]
            # The user's answer is sent once, after the questions.
            assert [m["role"] for m in llm.messages(-1)] == ["system", "user", "assistant", "user"]
            again = (await stub.RefineDraft(refine, metadata=token)).draft
            assert len(again.revisions) == 4 and llm.pending == 0
    finally:
        await app.stop()


async def test_malformed_reply_gets_one_repair_round(stack: Stack) -> None:
    stack.llm.reply("Here you go: every weekday at 8, post the status.")
    stack.llm.reply({"definition": VALID})
    draft = await _draft(stack)
    assert draft.status == drafter_pb2.DRAFT_STATUS_PENDING
    assert draft.revisions[-1].usage.calls == 2
    repair = stack.llm.messages(-1)[-1]
    assert repair["role"] == "user" and "could not read that answer" in repair["content"]


def _without_zone(definition: dict[str, Any]) -> dict[str, Any]:
    bare = copy.deepcopy(definition)
    del bare["triggers"][0]["config"]["timezone"]
    return bare


async def test_schedule_without_zone_runs_in_the_users_zone_and_says_so(stack: Stack) -> None:
    stack.llm.reply({"definition": _without_zone(VALID)})
    draft = await stack.drafter.DraftAutomation(
        pb.DraftAutomationRequest(intent="every weekday at 8 post", timezone="America/New_York"),
        metadata=stack.owner,
    )
    rev = draft.draft.revisions[-1]
    assert rev.status == drafter_pb2.DRAFT_STATUS_PENDING
    trigger = rev.definition.triggers[0]
    assert trigger.config["timezone"] == "America/New_York"
    assert "America/New_York" in rev.preview.triggers[0].description
    assert any("America/New_York" in w for w in rev.preview.warnings)
    # The zone the model named is kept, and nothing is said about it.
    stack.llm.reply({"definition": VALID})
    named = await stack.drafter.DraftAutomation(
        pb.DraftAutomationRequest(intent="every weekday at 8 post", timezone="America/New_York"),
        metadata=stack.owner,
    )
    kept = named.draft.revisions[-1]
    assert kept.definition.triggers[0].config["timezone"] == "Europe/Berlin"
    assert not kept.preview.warnings
