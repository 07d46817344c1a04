"""WatchRun: woken by run events on NATS, with a slow re-check for a missed event."""

from __future__ import annotations

import asyncio
from typing import Any

import nats

from autom.api.events.v1 import events_pb2
from autom.core.auth import Principal, Role
from autom.executor.service import ExecutorService, WatchEvent
from autom.executor.watch import RunWatchers

Harness = Any
CALLER = Principal(subject="user:owner", workspace_id="ws1", role=Role.OWNER, token_id="t")


async def test_watchers_are_woken_by_an_event_of_their_run(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        watchers = RunWatchers(nc)
        async with watchers.watch("run-1") as wake:
            event = events_pb2.RunEvent(run_id="run-1", status="running")
            await nc.publish("automations.runs.step_finished", event.SerializeToString())
            await asyncio.wait_for(wake.wait(), 10)
    finally:
        await nc.close()


async def test_a_watcher_that_gets_no_event_still_follows_the_run_to_its_end(
    harness: Harness,
) -> None:
    # No NATS at all: every event is "missed"; the periodic re-check alone must carry the watch.
    service = ExecutorService(
        store=harness.store,
        definitions=harness.definitions,
        engine=harness.engine,
        worker=None,
        relay=None,
        watchers=RunWatchers(None),
        watch_recheck_seconds=0.05,
    )
    snapshot = harness.automation(
        {
            "name": "w",
            "plan": [
                {"id": "a", "action": "wait", "params": {"duration": "200ms"}},
                {"id": "b", "action": "wait", "params": {"duration": "200ms"}},
            ],
        }
    )
    state = await harness.claim(harness.new_run(snapshot))
    seen: list[WatchEvent] = []

    async def follow() -> None:
        async for event in service.watch(CALLER, state.run_id):
            seen.append(event)

    watcher = asyncio.ensure_future(follow())
    await harness.engine.execute(state, pending_events=[])
    await asyncio.wait_for(watcher, 10)
    assert seen[0].kind == "snapshot" and seen[-1].kind == "terminal"
    streamed = [e.step["step_id"] for e in seen if e.step is not None]
    snapshot_steps = [r["step_id"] for r in seen[0].row.steps]
    assert snapshot_steps + streamed == ["a", "b"]
    assert [r["step_id"] for r in seen[-1].row.steps] == ["a", "b"]
