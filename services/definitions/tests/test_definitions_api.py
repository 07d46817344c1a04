"""DefinitionsService over a real gRPC channel, PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import grpc
import nats
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.api.events.v1 import events_pb2
from autom.core.auth import Role
from autom.core.grpcserver import GrpcApp, channel
from autom.definitions.convert import definition_to_proto

TokenFor = Callable[..., str]


def stub(app: GrpcApp, token: str | None) -> pb_grpc.DefinitionsServiceStub:
    return pb_grpc.DefinitionsServiceStub(channel(app.address, token))


def field_violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.update({v.field: v.description for v in br.field_violations})
    return out


async def create(api: pb_grpc.DefinitionsServiceStub, raw: dict[str, Any], **kw: Any) -> Any:
    return (
        await api.CreateAutomation(
            pb.CreateAutomationRequest(definition=definition_to_proto(raw), **kw)
        )
    ).automation


async def update(
    api: pb_grpc.DefinitionsServiceStub, automation_id: str, raw: dict[str, Any], **kw: Any
) -> Any:
    """UpdateAutomation of version 1 to `raw` (its response)."""
    return await api.UpdateAutomation(
        pb.UpdateAutomationRequest(
            automation_id=automation_id, version=1, definition=definition_to_proto(raw), **kw
        )
    )


async def test_create_then_get_round_trips_byte_for_byte(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.EDITOR))
    sent = definition_to_proto(digest)
    created = (await api.CreateAutomation(pb.CreateAutomationRequest(definition=sent))).automation
    got = (await api.GetAutomation(pb.GetAutomationRequest(automation_id=created.id))).automation
    assert got.definition.SerializeToString(deterministic=True) == sent.SerializeToString(
        deterministic=True
    )
    assert got.version == 1
    assert got.status == definitions_pb2.AUTOMATION_STATUS_ACTIVE
    by_name = await api.GetAutomation(pb.GetAutomationRequest(automation_id=digest["name"]))
    assert by_name.automation.id == created.id


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(name=""), "definition.name"),
        (
            lambda d: d["triggers"][0]["config"].update(cron="every monday"),
            "definition.triggers[0].config.cron",
        ),
        (
            lambda d: d["triggers"][0]["config"].update(timezone="Europe/Atlantis"),
            "definition.triggers[0].config.timezone",
        ),
    ],
    ids=["empty-name", "malformed-cron", "unknown-zone"],
)
async def test_bad_input_answers_invalid_argument_with_field_path(
    definitions_app: GrpcApp,
    token_for: TokenFor,
    digest: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    api = stub(definitions_app, token_for(Role.OWNER))
    mutate(digest)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(api, digest)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(err.value)


async def test_automation_tools_must_name_an_automation_of_the_workspace(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.OWNER))
    digest["plan"][1]["params"]["tools"] = ["http_request", "automation:file-issue"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(api, digest)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "definition.plan[1].params.tools[1]" in field_violations(err.value)
    child = copy.deepcopy(digest)
    child["name"] = "file-issue"
    child["plan"][1]["params"]["tools"] = ["automation:file-issue"]  # itself: allowed
    await create(api, child)
    created = await create(api, digest)
    assert created.name == digest["name"]


async def test_validate_definition_reports_without_saving(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.VIEWER))
    digest["plan"][0]["action"] = "teleport"
    answer = await api.ValidateDefinition(
        pb.ValidateDefinitionRequest(definition=definition_to_proto(digest))
    )
    assert not answer.valid
    assert [v.field for v in answer.violations] == ["plan[0].action"]
    listed = await api.ListAutomations(pb.ListAutomationsRequest())
    assert list(listed.automations) == []


async def test_create_is_idempotent_on_request_id(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.EDITOR))
    first, second = await asyncio.gather(
        create(api, digest, request_id="req-1"), create(api, digest, request_id="req-1")
    )
    assert first.id == second.id
    listed = await api.ListAutomations(pb.ListAutomationsRequest())
    assert len(listed.automations) == 1


async def test_duplicate_name_answers_already_exists(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.EDITOR))
    await create(api, digest)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(api, digest)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def _created_with_edit(
    app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> tuple[pb_grpc.DefinitionsServiceStub, Any, dict[str, Any]]:
    """An editor's stub, a created automation, and its definition with a new description."""
    api = stub(app, token_for(Role.EDITOR))
    created = await create(api, digest)
    changed = copy.deepcopy(digest)
    changed["description"] = "v2"
    return api, created, changed


async def test_update_with_stale_version_is_aborted_and_versions_are_immutable(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api, created, changed = await _created_with_edit(definitions_app, token_for, digest)
    updated = (await update(api, created.id, changed)).automation
    assert updated.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await update(api, created.id, changed)
    assert err.value.code() == grpc.StatusCode.ABORTED
    versions = await api.ListAutomationVersions(
        pb.ListAutomationVersionsRequest(automation_id=created.id)
    )
    assert [v.version for v in versions.versions] == [2, 1]
    assert versions.versions[1].definition.description == digest["description"]
    v1 = await api.GetAutomation(pb.GetAutomationRequest(automation_id=created.id, version=1))
    assert v1.automation.definition.description == digest["description"]


async def test_update_is_idempotent_on_request_id(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api, created, changed = await _created_with_edit(definitions_app, token_for, digest)
    # A retry after a lost answer, even at once: one version 2, not a conflict.
    first, again = await asyncio.gather(
        update(api, created.id, changed, request_id="edit-1"),
        update(api, created.id, changed, request_id="edit-1"),
    )
    assert first.automation.version == again.automation.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        # A new edit from the version it read: stale.
        await update(api, created.id, changed, request_id="edit-2")
    assert err.value.code() == grpc.StatusCode.ABORTED
    versions = await api.ListAutomationVersions(
        pb.ListAutomationVersionsRequest(automation_id=created.id)
    )
    assert [v.version for v in versions.versions] == [2, 1]


async def test_roles_and_workspaces(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    owner_a = stub(definitions_app, token_for(Role.OWNER, "ws-a"))
    viewer_a = stub(definitions_app, token_for(Role.VIEWER, "ws-a"))
    owner_b = stub(definitions_app, token_for(Role.OWNER, "ws-b"))
    anonymous = stub(definitions_app, None)
    created = await create(owner_a, digest)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(viewer_a, {**digest, "name": "other"})
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await viewer_a.DeleteAutomation(pb.DeleteAutomationRequest(automation_id=created.id))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        await viewer_a.GetAutomation(pb.GetAutomationRequest(automation_id=created.id))
    ).automation.id == created.id

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await owner_b.GetAutomation(pb.GetAutomationRequest(automation_id=created.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert list((await owner_b.ListAutomations(pb.ListAutomationsRequest())).automations) == []

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await anonymous.ListAutomations(pb.ListAutomationsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_list_pages_in_stable_order_with_filters(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.EDITOR))
    for i in range(5):
        raw = copy.deepcopy(digest)
        raw["name"] = f"job-{i}"
        raw["metadata"]["tags"] = ["even"] if i % 2 == 0 else ["odd"]
        await create(api, raw)
    names: list[str] = []
    token = ""
    while True:
        page = await api.ListAutomations(pb.ListAutomationsRequest(page_size=2, page_token=token))
        names += [a.name for a in page.automations]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"job-{i}" for i in range(5)]
    even = await api.ListAutomations(pb.ListAutomationsRequest(tag="even"))
    assert [a.name for a in even.automations] == ["job-0", "job-2", "job-4"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ListAutomations(pb.ListAutomationsRequest(page_token="%%%"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_committed_change_publishes_exactly_one_event(
    definitions_app: GrpcApp, nats_url: str, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.OWNER))
    created = await create(api, digest)
    await api.PauseAutomation(pb.PauseAutomationRequest(automation_id=created.id, note="hold"))
    await api.ResumeAutomation(pb.ResumeAutomationRequest(automation_id=created.id))
    with pytest.raises(grpc.aio.AioRpcError):  # rolled back: no event
        await api.UpdateAutomation(
            pb.UpdateAutomationRequest(
                automation_id=created.id, version=9, definition=definition_to_proto(digest)
            )
        )
    with pytest.raises(grpc.aio.AioRpcError):  # rejected: no event
        await create(api, digest)
    await api.DeleteAutomation(pb.DeleteAutomationRequest(automation_id=created.id))

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("automations.definitions.>", durable="test-events")
        seen: list[Any] = []

        async def all_four() -> None:
            try:
                for msg in await sub.fetch(10, timeout=0.5):
                    event = events_pb2.DefinitionEvent()
                    event.ParseFromString(msg.data)
                    seen.append(event)
                    await msg.ack()
            except nats.errors.TimeoutError:
                pass
            assert len(seen) >= 4

        from autom.devstack.eventually import assert_eventually

        await assert_eventually(all_four, timeout=10)
        info = await js.stream_info("AUTOM_DEFINITIONS")
        assert info.state.messages == 4
    finally:
        await nc.close()
    assert [e.type for e in seen] == [
        events_pb2.DEFINITION_EVENT_TYPE_CREATED,
        events_pb2.DEFINITION_EVENT_TYPE_PAUSED,
        events_pb2.DEFINITION_EVENT_TYPE_RESUMED,
        events_pb2.DEFINITION_EVENT_TYPE_DELETED,
    ]
    assert seen[0].triggers[0].config["cron"] == "0 9 * * 1"
    assert not seen[1].active and seen[2].active
    # Pause and resume keep the version; the database-assigned revision orders every change.
    assert [e.version for e in seen] == [1, 1, 1, 1]
    revisions = [e.revision for e in seen]
    assert revisions[0] == created.revision > 0 and revisions == sorted(set(revisions))


async def test_definition_schema_carries_the_catalog(
    definitions_app: GrpcApp, token_for: TokenFor
) -> None:
    api = stub(definitions_app, token_for(Role.VIEWER))
    answer = await api.GetDefinitionSchema(pb.GetDefinitionSchemaRequest())
    assert "plan" in answer.json_schema["properties"]
    assert {"transform", "http_request", "agent_task"} <= {a.type for a in answer.catalog.actions}
    assert [t.type for t in answer.catalog.triggers] == ["event", "schedule", "webhook"]


async def test_get_and_list_answer_the_revision_every_change_bumps(
    definitions_app: GrpcApp, token_for: TokenFor, digest: dict[str, Any]
) -> None:
    api = stub(definitions_app, token_for(Role.OWNER))
    created = await create(api, digest)
    paused = (
        await api.PauseAutomation(pb.PauseAutomationRequest(automation_id=created.id))
    ).automation
    got = (await api.GetAutomation(pb.GetAutomationRequest(automation_id=created.id))).automation
    listed = (await api.ListAutomations(pb.ListAutomationsRequest())).automations
    assert paused.version == created.version and paused.revision > created.revision
    assert got.revision == paused.revision and [a.revision for a in listed] == [paused.revision]
    resumed = (
        await api.ResumeAutomation(pb.ResumeAutomationRequest(automation_id=created.id))
    ).automation
    updated = (
        await api.UpdateAutomation(
            pb.UpdateAutomationRequest(
                automation_id=created.id, version=1, definition=definition_to_proto(digest)
            )
        )
    ).automation
    assert paused.revision < resumed.revision < updated.revision


async def test_schedule_triggers_stream_in_bounded_chunks_to_the_scheduler_only(
    definitions_app: GrpcApp, token_for: TokenFor, signer: Any, digest: dict[str, Any]
) -> None:
    owner = stub(definitions_app, token_for(Role.OWNER))
    # ~200 KiB of plan each: the stream carries triggers only, never the plan.
    digest["plan"].append({"id": "bulk", "action": "log", "params": {"message": "x" * 200_000}})
    digest["triggers"].append({"type": "schedule", "config": {"cron": "*/5 * * * *"}})
    ids = set()
    for i in range(12):
        digest["name"] = f"big-{i}"
        ids.add((await create(owner, digest)).id)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        async for _ in owner.StreamScheduleTriggers(pb.StreamScheduleTriggersRequest()):
            pass
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    scheduler = stub(definitions_app, signer.service_token("scheduler")[0])
    chunks = [
        chunk
        async for chunk in scheduler.StreamScheduleTriggers(
            pb.StreamScheduleTriggersRequest(chunk_size=5)
        )
    ]
    assert [len(c.automations) for c in chunks] == [5, 5, 2]
    items = [a for c in chunks for a in c.automations]
    assert {a.automation_id for a in items} == ids
    assert [a.automation_id for a in items] == sorted(ids)
    first = items[0]
    assert [t.id for t in first.triggers] == ["schedule_0", "schedule_1"]
    assert first.triggers[1].config["cron"] == "*/5 * * * *"
    assert first.revision > 0 and first.version == 1 and first.created_by == "user:alice"
    assert first.status == definitions_pb2.AUTOMATION_STATUS_ACTIVE
    assert max(c.ByteSize() for c in chunks) < 64 * 1024
