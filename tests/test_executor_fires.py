"""The executor over real NATS and PostgreSQL: fires, redelivery, leases, cancel, retry, watch."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.api.events.v1 import events_pb2
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.core import bus
from autom.core.auth import Role, TokenSigner
from autom.core.db import create_engine
from autom.core.errors import Unavailable
from autom.core.grpcserver import GrpcApp, bearer, channel
from autom.core.protoconv import dict_to_struct, from_timestamp, to_timestamp, value_to_py
from autom.devstack.eventually import assert_eventually
from autom.devstack.testing import service_keys
from autom.executor.app import build_app
from autom.executor.settings import ExecutorSettings
from autom.executor.sources import Snapshot, StaticDefinitions
from autom.executor.store import NewRun, RunStore, create_pool

WS = "ws1"


class Stack:
    """An executor app fed by in-memory definitions, with a NATS client and a DB engine."""

    def __init__(
        self,
        app: GrpcApp,
        defs: StaticDefinitions,
        js: Any,
        db: AsyncEngine,
        pool: Any,
        token: str,
        signer: TokenSigner,
    ) -> None:
        self.app = app
        self.defs = defs
        self.js = js
        self.db = db
        self.store = RunStore(db, pool)
        self.token = token
        self.signer = signer
        self.stub = egrpc.ExecutorServiceStub(channel(app.address, token))

    def automation(self, plan: list[dict[str, Any]], **execution: Any) -> Snapshot:
        definition: dict[str, Any] = {"name": "x", "plan": plan}
        if execution:
            definition["execution"] = execution
        snapshot = Snapshot(str(uuid.uuid4()), WS, 1, definition, "user:creator")
        self.defs.add(snapshot)
        return snapshot

    async def fire(
        self,
        snapshot: Snapshot,
        fire_id: str | None = None,
        inputs: dict[str, Any] | None = None,
        msg_id: str | None = None,
        due: datetime | None = None,
    ) -> str:
        """Publish a scheduled fire due now, or at `due` (handed over ahead of it)."""
        fire_id = fire_id or f"sched:{uuid.uuid4().hex}"
        due = due or datetime.now(UTC)
        event = events_pb2.FireEvent(
            fire_id=fire_id,
            workspace_id=WS,
            automation_id=snapshot.automation_id,
            automation_version=snapshot.version,
            trigger_type="schedule",
            fired_time=to_timestamp(due),
            scheduled_for=to_timestamp(due),
            inputs=dict_to_struct(inputs or {}),
        )
        await bus.publish(
            self.js, f"automations.fires.{WS}", event.SerializeToString(), msg_id=msg_id or fire_id
        )
        return fire_id

    async def runs_for(self, fire_id: str) -> list[Any]:
        async with self.db.connect() as conn:
            return list(
                (
                    await conn.execute(
                        sa.text("SELECT * FROM executor.runs WHERE fire_id = :f"), {"f": fire_id}
                    )
                ).all()
            )

    async def terminal(self, fire_id: str, timeout: float = 10) -> Any:
        """The terminal run of a fire, with its step records."""

        async def check() -> Any:
            rows = await self.runs_for(fire_id)
            assert len(rows) == 1 and rows[0].status not in ("pending", "running"), rows
            return rows[0]

        row = await assert_eventually(check, timeout=timeout)
        return await self.store.get(row.id)


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    database_url: str, nats_url: str, signing_key: str
) -> AsyncIterator[MakeStack]:
    apps: list[GrpcApp] = []
    defs = StaticDefinitions(secrets={"TOKEN": "s3cr3t"})
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # The test publishes fires and revocations itself, standing in for the streams' owners.
    await bus.ensure_streams(js, (bus.FIRES_STREAM, bus.AUTH_STREAM))
    db = create_engine(url=database_url, application_name="executor-it")
    pool = await create_pool(database_url, size=4, application_name="executor-it")
    signer = TokenSigner(signing_key)
    token = signer.issue(subject="user:owner", workspace_id=WS, role=Role.OWNER)[0]

    async def make(**overrides: Any) -> Stack:
        settings = ExecutorSettings(
            database_url=database_url,
            nats_url=nats_url,
            **service_keys("executor", signing_key),
            grpc_port=0,
            **overrides,
        )
        app = await build_app(settings, definitions=defs)
        await app.start()
        apps.append(app)
        return Stack(app, defs, js, db, pool, token, signer)

    yield make
    for app in reversed(apps):
        if app.bound_port:
            await app.stop()
    await nc.close()
    await pool.close()
    await db.dispose()


async def test_fire_runs_to_success_and_publishes_run_events(make_stack: MakeStack) -> None:
    s = await make_stack()
    sub = await s.js.subscribe("automations.runs.>", ordered_consumer=True)
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": "{{ inputs.x }}"}}])
    fire_id = await s.fire(a, inputs={"x": 7})
    row = await s.terminal(fire_id)
    assert row.status == "succeeded"
    assert row.steps[0]["output"] == 7
    assert row.principal == "user:creator"
    subjects = []
    while len(subjects) < 3:
        msg = await sub.next_msg(timeout=5)
        subjects.append(msg.subject)
    assert subjects == [
        "automations.runs.started",
        "automations.runs.step_finished",
        "automations.runs.finished",
    ]


async def test_a_fire_handed_over_ahead_starts_at_its_time_not_before(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    sub = await s.js.subscribe("automations.runs.>", ordered_consumer=True)
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    fire_id = await s.fire(a, due=due)
    row = await s.terminal(fire_id)
    assert row.status == "succeeded"
    # Claimed on receipt; its start is the fire's time (or the claim, had it come later).
    assert row.started_at == max(row.created_at, due)
    assert datetime.fromisoformat(row.steps[0]["started_at"]) >= due
    msg = await sub.next_msg(timeout=5)
    started = events_pb2.RunEvent.FromString(msg.data)
    assert msg.subject == "automations.runs.started" and started.run_id == row.id
    assert from_timestamp(started.occur_time) >= due


async def test_a_fire_waiting_for_its_time_holds_no_run_slot(make_stack: MakeStack) -> None:
    s = await make_stack(max_in_flight=1)
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    due = datetime.now(UTC) + timedelta(seconds=5)
    early = await s.fire(a, due=due)
    now = await s.fire(a)
    # The only slot stays free for a fire due now while the early one waits.
    assert (await s.terminal(now)).finished_at < due
    row = await s.terminal(early, timeout=30)
    assert row.status == "succeeded" and row.started_at == max(row.created_at, due)


async def test_a_run_claimed_ahead_of_its_time_can_be_cancelled_while_it_waits(
    make_stack: MakeStack,
) -> None:
    # Lease and ack wait long enough to hold a fire a minute ahead.
    s = await make_stack(lease_seconds=300, ack_wait_seconds=300)
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    due = datetime.now(UTC) + timedelta(seconds=60)
    fire_id = await s.fire(a, due=due)

    async def claimed() -> Any:
        rows = await s.runs_for(fire_id)
        assert rows and rows[0].status == "running"
        return rows[0]

    row = await assert_eventually(claimed)
    assert row.created_at < due and row.started_at == due
    resp = await s.stub.CancelRun(epb.CancelRunRequest(run_id=row.id, reason="not today"))
    assert resp.run.status == executor_pb2.RUN_STATUS_CANCELLED
    done = await s.terminal(fire_id)
    assert done.status == "cancelled" and done.finished_at < due
    assert [step["status"] for step in done.steps] == ["cancelled"]


async def test_a_fire_handed_over_ahead_is_skipped_when_its_automation_stops_meanwhile(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    due = datetime.now(UTC) + timedelta(seconds=5)
    fire_id = await s.fire(a, due=due)
    # Paused after the scheduler handed the fire over (the executor learns it from events).
    s.defs.add(dataclasses.replace(a, status="paused"))
    row = await s.terminal(fire_id, timeout=30)
    assert row.status == "skipped" and row.steps == []
    assert row.error["type"] == "AutomationStopped"


async def test_fire_redelivered_creates_no_second_run(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    fire_id = await s.fire(a)
    first = await s.terminal(fire_id)
    # A second delivery of the same fire (past the dedupe window: another msg id).
    await s.fire(a, fire_id=fire_id, msg_id=f"{fire_id}-again")
    sentinel = await s.fire(a)
    await s.terminal(sentinel)
    rows = await s.runs_for(fire_id)
    assert len(rows) == 1 and rows[0].id == first.id and rows[0].attempt == 1


async def test_run_with_expired_lease_is_resumed_at_the_first_unfinished_step(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    a = s.automation(
        [
            {"id": "a", "action": "transform", "params": {"output": "first"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ steps.a.output }}-second"}},
        ]
    )
    fire_id = f"sched:{uuid.uuid4().hex}"
    # A worker claimed the run, recorded step a, then died (its lease expired).
    new = NewRun(
        id=str(uuid.uuid4()),
        fire_id=fire_id,
        workspace_id=WS,
        automation_id=a.automation_id,
        automation_version=1,
        trigger_type="schedule",
        trigger_id="",
        fire_inputs={},
        scheduled_for=None,
        fired_at=None,
        last_fired_at=None,
        principal="user:creator",
    )
    dead = await s.store.claim(new, token="dead", owner="dead", lease_seconds=0.01)
    assert dead is not None
    record = {
        "step_id": "a",
        "action": "transform",
        "phase": "plan",
        "status": "succeeded",
        "attempts": 1,
        "output": "first",
        "params": {"output": "first"},
        "started_at": None,
        "finished_at": None,
        "error": None,
        "cost_usd": 0,
    }
    assert await s.store.write(dead.id, "dead", steps=[record], inputs={})
    await asyncio.sleep(0.05)
    await s.fire(a, fire_id=fire_id)
    row = await s.terminal(fire_id)
    assert row.status == "succeeded" and row.attempt == 2
    assert [r["step_id"] for r in row.steps] == ["a", "b"]
    assert row.steps[1]["output"] == "first-second"
    # The dead worker's token no longer writes anything.
    assert not await s.store.write(dead.id, "dead", status="failed")


async def test_live_lease_of_another_worker_is_respected(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    fire_id = f"sched:{uuid.uuid4().hex}"
    new = NewRun(
        id=str(uuid.uuid4()),
        fire_id=fire_id,
        workspace_id=WS,
        automation_id=a.automation_id,
        automation_version=1,
        trigger_type="schedule",
        trigger_id="",
        fire_inputs={},
        scheduled_for=None,
        fired_at=None,
        last_fired_at=None,
        principal="",
    )
    other = await s.store.claim(new, token="other", owner="other", lease_seconds=1.0)
    assert other is not None
    await s.fire(a, fire_id=fire_id)
    await asyncio.sleep(0.3)
    rows = await s.runs_for(fire_id)
    assert rows[0].status == "running" and rows[0].lease_token == "other"
    # Once the other worker's lease lapses the redelivered fire takes the run over.
    row = await s.terminal(fire_id, timeout=15)
    assert row.status == "succeeded" and row.attempt == 2


async def test_cancel_stops_the_current_step_promptly(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [
            {"id": "w", "action": "wait", "params": {"duration": "30s"}},
            {"id": "after", "action": "transform", "params": {"output": 1}},
        ]
    )
    fire_id = await s.fire(a)

    async def running() -> Any:
        rows = await s.runs_for(fire_id)
        assert rows and rows[0].status == "running"
        return rows[0]

    row = await assert_eventually(running)
    started = asyncio.get_running_loop().time()
    resp = await s.stub.CancelRun(epb.CancelRunRequest(run_id=row.id, reason="stop"))
    assert resp.run.status == executor_pb2.RUN_STATUS_CANCELLED
    assert asyncio.get_running_loop().time() - started < 3
    assert [st.step_id for st in resp.run.steps] == ["w"]
    assert resp.run.steps[0].status == executor_pb2.STEP_STATUS_CANCELLED


async def test_cancel_reaches_a_run_on_another_replica(make_stack: MakeStack) -> None:
    s = await make_stack()
    other = await make_stack()
    a = s.automation([{"id": "w", "action": "wait", "params": {"duration": "30s"}}])
    fire_id = await s.fire(a)

    async def running() -> Any:
        rows = await s.runs_for(fire_id)
        assert rows and rows[0].status == "running"
        return rows[0]

    row = await assert_eventually(running)
    # Ask both replicas; at least one of them does not hold the run and uses the DB flag.
    for stack in (s, other):
        await stack.stub.CancelRun(epb.CancelRunRequest(run_id=row.id))
    done = await s.terminal(fire_id, timeout=5)
    assert done.status == "cancelled"


async def test_retry_resumes_from_the_failed_step_in_a_linked_run(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [
            {"id": "a", "action": "transform", "params": {"output": "{{ run.id }}"}},
            {"id": "b", "action": "transform", "params": {"output": "{{ inputs.flag.x }}"}},
        ]
    )
    fire_id = await s.fire(a, inputs={"flag": "no-dict"})
    failed = await s.terminal(fire_id)
    assert failed.status == "failed"
    # The retry runs with the same inputs: b fails again, but a is copied and not re-run.
    resp = await s.stub.RetryRun(epb.RetryRunRequest(run_id=failed.id, request_id="r1"))
    assert resp.run.retry_of_run_id == failed.id
    again = await s.stub.RetryRun(epb.RetryRunRequest(run_id=failed.id, request_id="r1"))
    assert again.run.id == resp.run.id

    async def done() -> executor_pb2.Run:
        got = (await s.stub.GetRun(epb.GetRunRequest(run_id=resp.run.id))).run
        assert got.status == executor_pb2.RUN_STATUS_FAILED
        return got

    got = await assert_eventually(done)
    assert got.trigger_type == "retry"
    assert value_to_py(got.steps[0].output) == failed.id  # copied from the old run
    assert [st.step_id for st in got.steps] == ["a", "b"]


async def test_watch_streams_steps_until_terminal(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [{"id": f"s{i}", "action": "wait", "params": {"duration": "100ms"}} for i in range(3)]
    )
    fire_id = await s.fire(a)

    async def exists() -> Any:
        rows = await s.runs_for(fire_id)
        assert rows
        return rows[0]

    row = await assert_eventually(exists)
    kinds = []
    steps = []
    # grpc.aio registers a multi-kind client interceptor for unary-unary only, so core's
    # channel(token) does not authenticate streams: send the bearer explicitly.
    watch = s.stub.WatchRun(epb.WatchRunRequest(run_id=row.id), metadata=bearer(s.token))
    async for event in watch:
        kinds.append(event.kind)
        if event.kind == "step":
            steps.append(event.step.step_id)
    assert kinds[0] == "snapshot" and kinds[-1] == "terminal"
    assert steps == [f"s{i}" for i in range(3)][-len(steps) :]


async def test_watch_is_pushed_by_run_events(make_stack: MakeStack) -> None:
    # The safety re-check is an hour away: only run events can carry this watch to its end.
    s = await make_stack(watch_recheck_seconds=3600)
    plan = [{"id": f"s{i}", "action": "wait", "params": {"duration": "300ms"}} for i in range(3)]
    a = s.automation([*plan, {"id": "t", "action": "transform", "params": {"output": 1}}])
    fire_id = await s.fire(a)

    async def exists() -> Any:
        rows = await s.runs_for(fire_id)
        assert rows
        return rows[0]

    row = await assert_eventually(exists)
    events: list[Any] = []

    async def follow() -> None:
        watch = s.stub.WatchRun(epb.WatchRunRequest(run_id=row.id), metadata=bearer(s.token))
        async for event in watch:
            events.append(event)

    await asyncio.wait_for(follow(), 30)
    assert events[0].kind == "snapshot"
    # A terminal event is only sent by a watcher that saw the run change after its snapshot.
    assert events[-1].kind == "terminal"
    assert events[-1].run.status == executor_pb2.RUN_STATUS_SUCCEEDED
    streamed = [e.step.step_id for e in events if e.HasField("step")]
    assert [st.step_id for st in events[0].run.steps] + streamed == ["s0", "s1", "s2", "t"]
    assert [st.step_id for st in events[-1].run.steps] == ["s0", "s1", "s2", "t"]


async def test_other_workspaces_see_no_runs(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    row = await s.terminal(await s.fire(a))
    token = s.signer.issue(subject="u", workspace_id="other", role=Role.OWNER)[0]
    stub = egrpc.ExecutorServiceStub(channel(s.app.address, token))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetRun(epb.GetRunRequest(run_id=row.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (await stub.ListRuns(epb.ListRunsRequest())).runs


async def test_list_runs_filters_and_pages(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    b = s.automation([{"id": "a", "action": "nope"}])
    for _ in range(5):
        await s.terminal(await s.fire(a))
    await s.terminal(await s.fire(b))
    seen: list[str] = []
    token = ""
    while True:
        page = await s.stub.ListRuns(
            epb.ListRunsRequest(automation_id=a.automation_id, page_size=2, page_token=token)
        )
        seen += [r.id for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5
    failed = await s.stub.ListRuns(epb.ListRunsRequest(status=executor_pb2.RUN_STATUS_FAILED))
    assert [r.automation_id for r in failed.runs] == [b.automation_id]
    future = await s.stub.ListRuns(
        epb.ListRunsRequest(created_after=to_timestamp(datetime.now(UTC) + timedelta(hours=1)))
    )
    assert not future.runs
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.stub.ListRuns(epb.ListRunsRequest(page_token="%%%"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrency_skip_marks_the_second_run_skipped(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "600ms"}}], concurrency="skip"
    )
    first = await s.fire(a)

    async def running() -> None:
        rows = await s.runs_for(first)
        assert rows and rows[0].status == "running" and not rows[0].buffered

    await assert_eventually(running)
    second = await s.fire(a)
    assert (await s.terminal(second)).status == "skipped"
    assert (await s.terminal(first)).status == "succeeded"


async def test_concurrency_buffer_all_runs_one_after_another(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "200ms"}}], concurrency="buffer_all"
    )
    fires = [await s.fire(a) for _ in range(3)]
    rows = [await s.terminal(f, timeout=15) for f in fires]
    assert all(r.status == "succeeded" for r in rows)
    spans = sorted((r.steps[0]["started_at"], r.steps[0]["finished_at"]) for r in rows)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end


async def test_concurrency_cancel_other_cancels_the_running_run(make_stack: MakeStack) -> None:
    s = await make_stack()
    a = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "400ms"}}], concurrency="cancel_other"
    )
    first = await s.fire(a)

    async def running() -> None:
        rows = await s.runs_for(first)
        assert rows and rows[0].status == "running" and not rows[0].buffered

    await assert_eventually(running)
    second = await s.fire(a)
    assert (await s.terminal(first)).status == "cancelled"
    assert (await s.terminal(second)).status == "succeeded"


async def test_emit_event_publishes_to_the_workspace_custom_subject(make_stack: MakeStack) -> None:
    s = await make_stack()
    sub = await s.js.subscribe(f"automations.custom.{WS}.>", ordered_consumer=True)
    a = s.automation(
        [
            {
                "id": "e",
                "action": "emit_event",
                "params": {"subject": "orders.created", "data": {"n": "{{ 1 + 1 }}"}},
            }
        ]
    )
    row = await s.terminal(await s.fire(a))
    assert row.status == "succeeded", row.steps
    msg = await sub.next_msg(timeout=5)
    assert msg.subject == f"automations.custom.{WS}.orders.created"
    assert msg.data == b'{"n": 2}'


async def test_poison_fire_is_dead_lettered_and_others_keep_flowing(make_stack: MakeStack) -> None:
    s = await make_stack()
    await s.js.publish(f"automations.fires.{WS}", b"\xff\xfenot a protobuf")
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    assert (await s.terminal(await s.fire(a))).status == "succeeded"

    # Parked in a JetStream stream (not the database) and visible through the API.
    async def dead() -> Any:
        page = await s.stub.ListDeadLetters(epb.ListDeadLettersRequest())
        assert len(page.dead_letters) == 1
        return page

    page = await assert_eventually(dead)
    letter = page.dead_letters[0]
    assert letter.payload == b"\xff\xfenot a protobuf"
    assert letter.subject == f"automations.fires.{WS}" and "undecodable" in letter.reason
    editor = s.signer.issue(subject="u", workspace_id=WS, role=Role.EDITOR)[0]
    editor_channel = channel(s.app.address, editor)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await egrpc.ExecutorServiceStub(editor_channel).ListDeadLetters(
            epb.ListDeadLettersRequest()
        )
    await editor_channel.close()
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_list_action_types_lists_the_builtins(make_stack: MakeStack) -> None:
    s = await make_stack()
    types = [
        t.type for t in (await s.stub.ListActionTypes(epb.ListActionTypesRequest())).action_types
    ]
    assert types == sorted(["agent_task", "emit_event", "http_request", "log", "transform", "wait"])


async def test_concurrency_buffer_one_keeps_one_waiting_and_skips_the_rest(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    a = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "500ms"}}], concurrency="buffer_one"
    )
    first = await s.fire(a)

    async def admitted(fire_id: str, status: str, buffered: bool) -> None:
        rows = await s.runs_for(fire_id)
        assert rows and rows[0].status == status and rows[0].buffered is buffered, rows

    await assert_eventually(lambda: admitted(first, "running", False))
    second = await s.fire(a)
    await assert_eventually(lambda: admitted(second, "pending", True))
    third = await s.fire(a)
    assert (await s.terminal(third)).status == "skipped"
    assert (await s.terminal(first)).status == "succeeded"
    assert (await s.terminal(second)).status == "succeeded"


async def test_fire_of_an_unknown_automation_fails_with_dispatch_error(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    ghost = Snapshot(str(uuid.uuid4()), WS, 1, {"name": "ghost", "plan": []}, "user:x")
    row = await s.terminal(await s.fire(ghost))
    assert row.status == "failed"
    assert row.error["type"] == "DispatchError"


async def test_orphaned_run_whose_fire_is_gone_is_resumed_by_the_sweeper(
    make_stack: MakeStack,
) -> None:
    s = await make_stack(orphan_after_seconds=0.5, orphan_sweep_seconds=0.2)
    a = s.automation(
        [
            {"id": "a", "action": "transform", "params": {"output": 1}},
            {"id": "b", "action": "wait", "params": {"duration": "1ms"}},
        ]
    )
    fire_id = f"lost:{uuid.uuid4().hex}"
    # A worker claimed the run and died; its fire message is gone (never redelivered).
    new = NewRun(
        id=str(uuid.uuid4()),
        fire_id=fire_id,
        workspace_id=WS,
        automation_id=a.automation_id,
        automation_version=1,
        trigger_type="schedule",
        trigger_id="",
        fire_inputs={},
        scheduled_for=None,
        fired_at=None,
        last_fired_at=None,
        principal="user:creator",
    )
    assert await s.store.claim(new, token="dead", owner="dead", lease_seconds=0.01)
    row = await s.terminal(fire_id, timeout=10)
    assert row.status == "succeeded" and row.attempt == 2


class FlakyDefinitions(StaticDefinitions):
    """Definitions that answer UNAVAILABLE until `outage` more calls have been refused."""

    def __init__(self) -> None:
        super().__init__()
        self.outage = 0
        self.refused = 0

    async def get(self, automation_id: str, version: int) -> Snapshot:
        if self.outage > 0:
            self.outage -= 1
            self.refused += 1
            raise Unavailable("definitions service: UNAVAILABLE")
        return await super().get(automation_id, version)


async def test_definitions_outage_longer_than_any_delivery_limit_is_waited_out(
    database_url: str, nats_url: str, signing_key: str
) -> None:
    flaky = FlakyDefinitions()
    a = Snapshot(str(uuid.uuid4()), WS, 1, {"name": "x", "plan": []}, "user:creator")
    a.definition["plan"] = [{"id": "a", "action": "transform", "params": {"output": 1}}]
    flaky.add(a)
    settings = ExecutorSettings(
        database_url=database_url,
        nats_url=nats_url,
        **service_keys("executor", signing_key),
        grpc_port=0,
        retry_backoff_initial_seconds=0.02,
        retry_backoff_max_seconds=0.1,
    )
    nc = await nats.connect(nats_url)
    # The test publishes fires itself, standing in for the stream's owner (the scheduler).
    await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM, bus.AUTH_STREAM))
    app = await build_app(settings, definitions=flaky)
    await app.start()
    db = create_engine(url=database_url, application_name="executor-it")
    try:
        # More refusals than the old delivery limit (10) allowed: the fire is not given up.
        flaky.outage = 25
        fire = events_pb2.FireEvent(
            fire_id=f"sched:{uuid.uuid4().hex}",
            workspace_id=WS,
            automation_id=a.automation_id,
            automation_version=1,
            trigger_type="schedule",
        )
        await bus.publish(
            nc.jetstream(), f"automations.fires.{WS}", fire.SerializeToString(), msg_id="f1"
        )

        async def done() -> Any:
            async with db.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.text("SELECT * FROM executor.runs WHERE fire_id = :f"),
                        {"f": fire.fire_id},
                    )
                ).all()
            assert len(rows) == 1 and rows[0].status == "succeeded", rows
            return rows[0]

        await assert_eventually(done, timeout=20)
        assert flaky.refused == 25
    finally:
        await app.stop()
        await nc.close()
        await db.dispose()


async def test_unknown_automation_error_claims_absence_only(make_stack: MakeStack) -> None:
    s = await make_stack()
    ghost = Snapshot(str(uuid.uuid4()), WS, 1, {"name": "ghost", "plan": []}, "user:x")
    row = await s.terminal(await s.fire(ghost))
    assert row.error["type"] == "DispatchError"
    assert "unreachable" not in row.error["message"]


async def test_manual_run_of_a_log_only_plan_logs_each_line_once(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autom.executor.engine")
    s = await make_stack()
    marker = uuid.uuid4().hex
    a = s.automation(
        [
            {"id": "one", "action": "log", "params": {"message": f"{marker}-one"}},
            {"id": "two", "action": "transform", "params": {"output": 2}},
            {"id": "three", "action": "log", "params": {"message": f"{marker}-three"}},
        ]
    )
    started = await s.stub.StartRun(
        epb.StartRunRequest(automation_id=a.automation_id, request_id=marker)
    )

    async def done() -> Any:
        got = (await s.stub.GetRun(epb.GetRunRequest(run_id=started.run.id))).run
        assert got.status == executor_pb2.RUN_STATUS_SUCCEEDED
        return got

    run = await assert_eventually(done)
    assert [st.step_id for st in run.steps] == ["one", "two", "three"]
    lines = [r.getMessage() for r in caplog.records if marker in r.getMessage()]
    assert sorted(lines) == [f"step one: {marker}-one", f"step three: {marker}-three"]


async def test_undecodable_or_unstorable_fires_are_parked_and_the_rest_flow(
    make_stack: MakeStack,
) -> None:
    s = await make_stack()
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    # Decodable, but jsonb can never hold its inputs (a NUL character).
    nul = await s.fire(a, inputs={"body": "a\x00b"})
    ok = await s.fire(a)
    assert (await s.terminal(ok)).status == "succeeded"

    async def parked() -> Any:
        page = await s.stub.ListDeadLetters(epb.ListDeadLettersRequest())
        assert len(page.dead_letters) == 1
        return page

    letter = (await assert_eventually(parked)).dead_letters[0]
    assert "NUL" in letter.reason
    assert events_pb2.FireEvent.FromString(letter.payload).fire_id == nul
    assert not await s.runs_for(nul)


async def test_orphan_resumed_too_often_fails_with_the_reason(make_stack: MakeStack) -> None:
    s = await make_stack(orphan_after_seconds=0.3, orphan_sweep_seconds=0.2, max_orphan_resumes=0)
    a = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    fire_id = f"lost:{uuid.uuid4().hex}"
    new = NewRun(
        id=str(uuid.uuid4()),
        fire_id=fire_id,
        workspace_id=WS,
        automation_id=a.automation_id,
        automation_version=1,
        trigger_type="schedule",
        trigger_id="",
        fire_inputs={},
        scheduled_for=None,
        fired_at=None,
        last_fired_at=None,
        principal="user:creator",
    )
    assert await s.store.claim(new, token="dead", owner="dead-worker", lease_seconds=0.01)
    # A run nobody ever took up (its fire never got out, e.g. NATS was down) is no crash
    # loop: re-publishing it does not count.
    waiting = dataclasses.replace(new, id=str(uuid.uuid4()), fire_id=f"lost:{uuid.uuid4().hex}")
    await s.store.create_pending(waiting, [])
    row = await s.terminal(fire_id, timeout=10)
    assert row.status == "failed" and row.error["type"] == "RunAbandoned"
    assert "dead-worker" in row.error["message"] and row.orphan_resumes == 1
    assert (await s.terminal(waiting.fire_id, timeout=10)).status == "succeeded"


async def test_buffered_runs_hold_no_slot(make_stack: MakeStack) -> None:
    s = await make_stack(max_in_flight=2, buffer_recheck_max_seconds=0.5)
    busy = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "30s"}}], concurrency="buffer_all"
    )
    first = await s.fire(busy)

    async def state(fire_id: str, status: str) -> None:
        rows = await s.runs_for(fire_id)
        assert rows and rows[0].status == status, rows

    await assert_eventually(lambda: state(first, "running"))
    # More waiting runs than free slots: they must not starve other automations.
    waiting = [await s.fire(busy) for _ in range(3)]
    for fire_id in waiting:

        async def parked(f: str = fire_id) -> None:
            await state(f, "pending")

        await assert_eventually(parked)
    other = s.automation([{"id": "a", "action": "transform", "params": {"output": 1}}])
    assert (await s.terminal(await s.fire(other), timeout=15)).status == "succeeded"
    for fire_id in waiting:
        rows = await s.runs_for(fire_id)
        assert rows[0].buffered and rows[0].status in ("pending", "running")
    assert (await s.runs_for(first))[0].status == "running"
    run_id = (await s.runs_for(first))[0].id
    await s.stub.CancelRun(epb.CancelRunRequest(run_id=run_id))
    for fire_id in waiting:
        run_id = (await s.runs_for(fire_id))[0].id
        await s.stub.CancelRun(epb.CancelRunRequest(run_id=run_id))


async def test_side_effecting_step_started_before_a_crash_is_resumed_as_a_replay(
    make_stack: MakeStack,
) -> None:
    keys: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"ok": True})

    server = web.Application()
    server.router.add_post("/hook", hook)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        s = await make_stack(http_allow_cidrs="127.0.0.0/8")
        plan = [
            {
                "id": "post",
                "action": "http_request",
                "params": {"method": "POST", "url": f"http://127.0.0.1:{port}/hook"},
            },
        ]
        a = s.automation(plan)
        # An ordinary run records that the step started before calling the action.
        fresh = await s.terminal(await s.fire(a))
        assert fresh.status == "succeeded" and fresh.started_steps == ("plan:post",)
        assert not fresh.steps[0].get("replayed")
        # A worker marked the step started, then died before recording its result.
        fire_id = f"sched:{uuid.uuid4().hex}"
        new = NewRun(
            id=str(uuid.uuid4()),
            fire_id=fire_id,
            workspace_id=WS,
            automation_id=a.automation_id,
            automation_version=1,
            trigger_type="schedule",
            trigger_id="",
            fire_inputs={},
            scheduled_for=None,
            fired_at=None,
            last_fired_at=None,
            principal="user:creator",
        )
        dead = await s.store.claim(new, token="dead", owner="dead", lease_seconds=0.01)
        assert dead is not None
        assert await s.store.mark_started(dead.id, "dead", "plan:post", 0.01)
        await s.fire(a, fire_id=fire_id)
        row = await s.terminal(fire_id, timeout=15)
        assert row.status == "succeeded" and row.attempt == 2
        assert row.steps[0]["replayed"] is True
        got = (await s.stub.GetRun(epb.GetRunRequest(run_id=row.id))).run
        assert got.steps[0].replayed
        assert keys == [f"{fresh.id}:post", f"{row.id}:post"]
    finally:
        await runner.cleanup()


async def test_busy_inline_steps_keep_the_lease_renewed(
    make_stack: MakeStack, database_url: str
) -> None:
    s = await make_stack(lease_seconds=1.5, cancel_poll_seconds=0.1)
    # Each render keeps the CPU busy for a good part of a second; together far past the lease.
    heavy = "{% for i in range(2500) %}{% for j in range(10) %}{{ i * j }}{% endfor %}{% endfor %}"
    a = s.automation(
        [{"id": "w", "action": "wait", "params": {"duration": "1ms"}}]
        + [{"id": f"s{i}", "action": "transform", "params": {"output": heavy}} for i in range(8)]
        + [{"id": "end", "action": "transform", "params": {"output": "done"}}]
    )
    fire_id = f"sched:{uuid.uuid4().hex}"
    stolen: list[str] = []
    finished = threading.Event()

    def thief() -> None:
        """Another replica on its own loop: takes the run whenever its lease has lapsed."""

        async def main() -> None:
            pool = await create_pool(database_url, size=1, application_name="thief")
            store = RunStore(s.db, pool)
            new = NewRun(
                id=str(uuid.uuid4()),
                fire_id=fire_id,
                workspace_id=WS,
                automation_id=a.automation_id,
                automation_version=1,
                trigger_type="schedule",
                trigger_id="",
                fire_inputs={},
                scheduled_for=None,
                fired_at=None,
                last_fired_at=None,
                principal="",
            )
            try:
                while not finished.is_set():
                    row = await store.by_fire(fire_id)
                    if row is not None and row.status == "running":
                        got = await store.claim(new, token="thief", owner="thief", lease_seconds=60)
                        if got is not None:
                            stolen.append(got.id)
                            return
                    await asyncio.sleep(0.05)
            finally:
                await pool.close()

        asyncio.run(main())

    watcher = threading.Thread(target=thief, daemon=True)
    watcher.start()
    try:
        await s.fire(a, fire_id=fire_id)

        async def ended() -> Any:
            rows = await s.runs_for(fire_id)
            assert stolen or (rows and rows[0].status not in ("pending", "running")), rows
            return rows[0]

        row = await assert_eventually(ended, timeout=40)
    finally:
        finished.set()
        await asyncio.to_thread(watcher.join, 10)
    assert not stolen, "another worker claimed the run while its owner was busy"
    assert row.status == "succeeded" and row.attempt == 1, row.error
