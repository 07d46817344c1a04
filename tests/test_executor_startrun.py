"""StartRun through the whole fire path with the real definitions service."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import nats
import pytest
from cryptography.fernet import Fernet
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.events.v1 import events_pb2
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import bus
from autom.core.auth import Role, TokenSigner
from autom.core.errors import Unavailable
from autom.core.grpcserver import GrpcApp, channel
from autom.core.protoconv import dict_to_struct, value_to_py
from autom.core.servicetokens import ServiceTokens
from autom.devstack.eventually import assert_eventually
from autom.devstack.testing import TEST_CREDENTIALS
from autom.executor.sources import GrpcDefinitions
from autom.scheduler.events import RUN_EVENT_SUBJECTS


def definition(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


async def _stacks(start_app: Any, owner_token: str, nats_url: str) -> tuple[Any, Any]:
    # Manual fires go through the fires stream; the test stands in for its owner (scheduler).
    nc = await nats.connect(nats_url)
    try:
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    finally:
        await nc.close()
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    executor = await start_app("executor", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
    return defs, runs


async def _finished(runs: Any, run_id: str) -> executor_pb2.Run:
    async def check() -> executor_pb2.Run:
        got = (await runs.GetRun(epb.GetRunRequest(run_id=run_id))).run
        assert got.status not in (
            executor_pb2.RUN_STATUS_PENDING,
            executor_pb2.RUN_STATUS_RUNNING,
        ), got.status
        return got

    return await assert_eventually(check, timeout=10)


async def test_start_run_goes_through_the_fire_path_idempotently(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    raw = {
        "name": "manual-one",
        "inputs": {
            "schema": {
                "type": "object",
                "required": ["who"],
                "properties": {"who": {"type": "string"}},
            }
        },
        "plan": [
            {
                "id": "greet",
                "action": "transform",
                "params": {"output": "hello {{ inputs.who }} from {{ trigger.type }}"},
            }
        ],
    }
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    started = (
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id, request_id="req-1", inputs=dict_to_struct({"who": "ann"})
            )
        )
    ).run
    assert started.status in (
        executor_pb2.RUN_STATUS_PENDING,
        executor_pb2.RUN_STATUS_RUNNING,
        executor_pb2.RUN_STATUS_SUCCEEDED,
    )
    assert started.fire_id == "manual:default:req-1"
    again = (
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id, request_id="req-1", inputs=dict_to_struct({"who": "ann"})
            )
        )
    ).run
    assert again.id == started.id
    # The same request id for a different request is an error, not the first run (item 13).
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id, request_id="req-1", inputs=dict_to_struct({"who": "bob"})
            )
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert started.id in field_violations(reused.value)["request_id"]
    done = await _finished(runs, started.id)
    assert done.status == executor_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.trigger_type == "manual" and done.principal == "user:owner"
    assert done.automation_version == created.version
    assert value_to_py(done.steps[0].output) == "hello ann from manual"

    # Inputs that miss the schema are refused at StartRun (issue 16 item 12), not failed later.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await runs.StartRun(epb.StartRunRequest(automation_id=created.id))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.who" in field_violations(info.value)

    # A paused automation may still be run by hand, and the run says so; an archived one may
    # not (item 14). StartRun's cached snapshot follows the definitions events within
    # milliseconds, so both are checked until the event has gone by.
    await defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=created.id, note="maint"))

    async def noted() -> executor_pb2.Run:
        run = (
            await runs.StartRun(
                epb.StartRunRequest(automation_id=created.id, inputs=dict_to_struct({"who": "cy"}))
            )
        ).run
        assert "paused" in run.note and "maint" in run.note, run.note
        return run

    paused_run = await assert_eventually(noted, timeout=10)
    paused_done = await _finished(runs, paused_run.id)
    assert paused_done.status == executor_pb2.RUN_STATUS_SUCCEEDED
    assert paused_done.note == paused_run.note and done.note == ""
    await defs.ArchiveAutomation(dpb.ArchiveAutomationRequest(automation_id=created.id))

    async def refused() -> grpc.aio.AioRpcError:
        try:
            await runs.StartRun(
                epb.StartRunRequest(automation_id=created.id, inputs=dict_to_struct({"who": "dee"}))
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.code()
            return exc
        raise AssertionError("an archived automation still starts")

    archived = await assert_eventually(refused, timeout=10)
    assert "archived" in (archived.details() or "")


async def test_a_manual_runs_events_end_in_manual_and_never_reach_the_scheduler(
    start_app: Any, owner_token: str, nats_url: str, database_url: str
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, (bus.RUNS_STREAM,))
        # Bound before the run: what the scheduler's filter would be delivered from now on.
        scheduler = await bus.pull_subscription(
            js,
            subject=RUN_EVENT_SUBJECTS,
            durable=f"t-{uuid.uuid4().hex[:8]}",
            stream=bus.RUNS_STREAM.name,
        )
        everything = await js.subscribe("automations.runs.>", ordered_consumer=True)
        raw = {
            "name": "manual-events",
            "plan": [{"id": "a", "action": "transform", "params": {"output": 1}}],
        }
        created = (
            await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
        ).automation
        run = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run
        subjects = []
        while len(subjects) < 3:
            msg = await everything.next_msg(timeout=10)
            if events_pb2.RunEvent.FromString(msg.data).run_id == run.id:
                subjects.append(msg.subject)
        assert subjects == [
            "automations.runs.started.manual",
            "automations.runs.step_finished.manual",
            "automations.runs.finished.manual",
        ]
        # A scheduled run's event after them: the scheduler's filter passes it, and would have
        # passed the manual run's, stored before it, first.
        marker = events_pb2.RunEvent(run_id=f"marker-{uuid.uuid4().hex}", fire_id="a:b")
        await js.publish("automations.runs.finished", marker.SerializeToString())
        seen: list[str] = []
        while marker.run_id not in seen:
            for msg in await scheduler.fetch(10, timeout=10):
                seen.append(events_pb2.RunEvent.FromString(msg.data).run_id)
                await msg.ack()
        assert run.id not in seen
        await scheduler.unsubscribe()

        # Once JetStream has them, the run's fire and events leave the outbox (kept, four
        # rows a run would grow it by millions a day under load).
        async def relayed_rows_gone() -> None:
            conn = await asyncpg.connect(database_url)
            try:
                left = await conn.fetchval("SELECT count(*) FROM executor.outbox")
            finally:
                await conn.close()
            assert left == 0, left

        await assert_eventually(relayed_rows_gone, timeout=10)
    finally:
        await nc.close()


def field_violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.update({v.field: v.description for v in br.field_violations})
    return out


async def test_start_run_refuses_inputs_that_violate_the_schema(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    raw = {
        "name": "typed-inputs",
        "inputs": {
            "schema": {
                "type": "object",
                "required": ["n", "who"],
                "properties": {"n": {"type": "integer"}, "who": {"type": "string"}},
            }
        },
        "plan": [{"id": "a", "action": "transform", "params": {"output": "{{ inputs.n }}"}}],
    }
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id, request_id="typed-1", inputs=dict_to_struct({"n": "abc"})
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(info.value)
    assert "inputs.n" in violations and "integer" in violations["inputs.n"]
    assert "inputs.who" in violations
    listed = await runs.ListRuns(epb.ListRunsRequest(automation_id=created.id))
    assert list(listed.runs) == []
    # The same request id with valid inputs is a fresh request: nothing was recorded for it.
    ok = (
        await runs.StartRun(
            epb.StartRunRequest(
                automation_id=created.id,
                request_id="typed-1",
                inputs=dict_to_struct({"n": 3, "who": "ann"}),
            )
        )
    ).run
    done = await _finished(runs, ok.id)
    assert done.status == executor_pb2.RUN_STATUS_SUCCEEDED, done.error


async def test_start_run_of_another_workspace_is_not_found(
    start_app: Any, owner_token: str, nats_url: str, signer: TokenSigner
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    raw = {"name": "mine", "plan": [{"id": "a", "action": "transform", "params": {"output": 1}}]}
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    stranger = signer.issue(subject="user:x", workspace_id="elsewhere", role=Role.OWNER)[0]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await runs.StartRun(
            epb.StartRunRequest(automation_id=created.id),
            metadata=(("authorization", f"Bearer {stranger}"),),
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    viewer = signer.issue(subject="user:v", workspace_id="default", role=Role.VIEWER)[0]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await runs.StartRun(
            epb.StartRunRequest(automation_id=created.id),
            metadata=(("authorization", f"Bearer {viewer}"),),
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_secrets_resolve_through_definitions_and_never_leak(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    await defs.SetSecret(dpb.SetSecretRequest(name="API_KEY", value="sk-very-secret"))
    raw = {
        "name": "secretive",
        "plan": [
            {"id": "a", "action": "transform", "params": {"output": "k={{ secrets.API_KEY }}"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ secrets.MISSING }}"}},
        ],
    }
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    run = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run
    done = await _finished(runs, run.id)
    assert done.status == executor_pb2.RUN_STATUS_FAILED
    assert "sk-very-secret" not in str(done)
    assert value_to_py(done.steps[0].output) == "k=***"
    assert done.steps[1].error.type == "SecretError"


async def test_start_run_caches_the_definition_until_definitions_events_change_it(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    finally:
        await nc.close()
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    executor = await start_app("executor", definitions_addr=definitions.address)
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token))
    raw = {"name": "cached", "plan": [{"id": "a", "action": "wait", "params": {"duration": "0s"}}]}
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    first = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run
    assert first.automation_version == 1

    # An update is seen through its event: StartRun moves to the new version.
    seen: list[str] = []
    watcher = await nats.connect(nats_url)

    async def note(msg: Any) -> None:
        seen.append(msg.subject)

    sub = await watcher.subscribe("automations.definitions.updated", cb=note)
    raw["plan"][0]["params"]["duration"] = "1ms"
    await defs.UpdateAutomation(
        dpb.UpdateAutomationRequest(automation_id=created.id, version=1, definition=definition(raw))
    )

    async def on_version_two() -> None:
        assert seen, "the update event has not gone by yet"
        run = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run
        assert run.automation_version == 2, run.automation_version

    await assert_eventually(on_version_two, timeout=10)
    await sub.unsubscribe()
    await watcher.close()

    # Cached, a StartRun no longer needs the definitions service: it starts while that is down.
    await definitions.stop()
    cached = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run
    assert cached.automation_version == 2
    pinned = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id, version=1))).run
    assert pinned.automation_version == 1
    # A name is resolved in the caller's workspace by definitions, never from the cache.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await runs.StartRun(epb.StartRunRequest(automation_id="cached"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_start_run_of_a_deleted_automation_is_not_found_once_cached(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    defs, runs = await _stacks(start_app, owner_token, nats_url)
    raw = {"name": "doomed", "plan": [{"id": "a", "action": "wait", "params": {"duration": "0s"}}]}
    created = (
        await defs.CreateAutomation(dpb.CreateAutomationRequest(definition=definition(raw)))
    ).automation
    for version in (0, 1):
        await runs.StartRun(epb.StartRunRequest(automation_id=created.id, version=version))
    await defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=created.id))

    async def gone() -> None:
        # An AssertionError (not pytest.raises' Failed) so the check is retried until the
        # delete event has gone by.
        for version in (0, 1):
            try:
                await runs.StartRun(epb.StartRunRequest(automation_id=created.id, version=version))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc.code()
            else:
                raise AssertionError(f"version {version} of a deleted automation still starts")

    await assert_eventually(gone, timeout=10)


@dataclasses.dataclass
class Listening:
    """A definitions service, its stub as the owner, and an executor's source listening."""

    definitions: GrpcApp
    defs: dgrpc.DefinitionsServiceStub
    source: GrpcDefinitions


@pytest.fixture
async def listening(start_app: Any, owner_token: str, nats_url: str) -> AsyncIterator[Listening]:
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    tokens = ServiceTokens(definitions.address, TEST_CREDENTIALS["executor"])
    nc = await nats.connect(nats_url)
    source = GrpcDefinitions(channel(definitions.address, tokens), nc=nc, latest_seconds=30.0)
    try:
        # Listening before anything is created: core NATS replays nothing to late subscribers.
        assert await source.listen()
        await nc.flush()
        defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
        yield Listening(definitions, defs, source)
    finally:
        await source.close()
        await nc.close()
        await tokens.close()


async def test_a_version_announced_for_firing_is_fetched_before_its_first_fire(
    listening: Listening,
) -> None:
    definitions, defs, source = listening.definitions, listening.defs, listening.source
    stop = asyncio.Event()
    prefetching = asyncio.create_task(source.prefetch(stop))
    plan = [{"id": "a", "action": "wait", "params": {"duration": "0s"}}]
    yearly = [{"type": "schedule", "config": {"cron": "0 0 1 1 *", "timezone": "UTC"}}]
    try:
        # Events arrive in order: once the second is fetched, the first was looked at too.
        quiet = await defs.CreateAutomation(
            dpb.CreateAutomationRequest(definition=definition({"name": "no-trigger", "plan": plan}))
        )
        fired = await defs.CreateAutomation(
            dpb.CreateAutomationRequest(
                definition=definition({"name": "yearly", "plan": plan, "triggers": yearly})
            )
        )

        async def fetched() -> None:
            assert source.holds(fired.automation.id, 1), "not fetched ahead yet"

        await assert_eventually(fetched, timeout=10)
        assert not source.holds(quiet.automation.id, 1), "nothing fires it: not worth fetching"
        # Held, the version a fire names needs no definitions service.
        await definitions.stop()
        snapshot = await source.get(fired.automation.id, 1)
        assert (snapshot.automation_id, snapshot.version) == (fired.automation.id, 1)
    finally:
        stop.set()
        await prefetching


async def test_definitions_events_tell_which_automations_stopped_firing(
    listening: Listening,
) -> None:
    defs, source = listening.defs, listening.source
    plan = [{"id": "a", "action": "wait", "params": {"duration": "0s"}}]
    created = await defs.CreateAutomation(
        dpb.CreateAutomationRequest(definition=definition({"name": "p", "plan": plan}))
    )
    automation_id = created.automation.id
    assert not source.stopped(automation_id)

    async def stopped(expected: bool) -> None:
        assert source.stopped(automation_id) is expected

    await defs.PauseAutomation(dpb.PauseAutomationRequest(automation_id=automation_id))
    await assert_eventually(lambda: stopped(True))
    await defs.ResumeAutomation(dpb.ResumeAutomationRequest(automation_id=automation_id))
    await assert_eventually(lambda: stopped(False))
    await defs.DeleteAutomation(dpb.DeleteAutomationRequest(automation_id=automation_id))
    await assert_eventually(lambda: stopped(True))


async def test_a_workspace_where_nothing_listens_for_events_is_remembered(
    start_app: Any, owner_token: str, nats_url: str
) -> None:
    definitions = await start_app("definitions", secrets_key=Fernet.generate_key().decode())
    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token))
    plan = [{"id": "a", "action": "wait", "params": {"duration": "0s"}}]
    listener = {"type": "event", "config": {"subject": "orders.*"}}
    nc = await nats.connect(nats_url)
    seen: list[str] = []

    async def note(msg: Any) -> None:
        seen.append(msg.subject)

    watching = await nc.subscribe("automations.definitions.>", cb=note)
    await defs.CreateAutomation(
        dpb.CreateAutomationRequest(
            definition=definition({"name": "listens", "plan": plan, "triggers": [listener]})
        )
    )

    async def announced() -> None:
        assert seen, "the created event has not gone by yet"

    # Once it has, no later event can make the source forget what it learns below.
    await assert_eventually(announced, timeout=10)
    await watching.unsubscribe()
    tokens = ServiceTokens(definitions.address, TEST_CREDENTIALS["executor"])
    source = GrpcDefinitions(channel(definitions.address, tokens), nc=nc, latest_seconds=30.0)
    try:
        assert await source.match_event_triggers("elsewhere", "runs.succeeded", "x", "ok") == []
        assert await source.match_event_triggers("default", "runs.succeeded", "x", "ok") == []
        await definitions.stop()
        # Nothing of that workspace listens: any other event of it matches nothing either.
        assert await source.match_event_triggers("elsewhere", "orders.new", "", "") == []
        # Something does in this one: another event must still be asked about.
        with pytest.raises(Unavailable):
            await source.match_event_triggers("default", "orders.new", "", "")
    finally:
        await source.close()
        await nc.close()
        await tokens.close()
