"""Previews: the scheduler's PreviewSchedule first, autom.schedule when it is unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from autom.api.scheduler.v1 import scheduler_service_pb2 as spb
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc as spb_grpc
from autom.core.protoconv import to_timestamp
from autom.drafter.clients import SchedulerClient
from autom.drafter.preview import PreviewBuilder, local_schedule_preview

DEFINITION: dict[str, Any] = {
    "name": "x",
    "triggers": [
        {"type": "schedule", "config": {"cron": "0 9 * * 1", "timezone": "Europe/Zurich"}},
        {"type": "webhook", "config": {}},
    ],
    "plan": [
        {"id": "a", "action": "log", "params": {"message": "m"}},
        {"id": "b", "action": "wait", "when": "{{ true }}", "params": {"duration": "1s"}},
    ],
}
FIXED = [datetime(2030, 1, d, tzinfo=UTC) for d in (1, 2, 3)]


class FakeScheduler(spb_grpc.SchedulerServiceServicer):
    """Answers PreviewSchedule with fixed instants and records the requests and tokens."""

    def __init__(self) -> None:
        self.requests: list[tuple[spb.PreviewScheduleRequest, str]] = []

    async def PreviewSchedule(
        self, request: spb.PreviewScheduleRequest, context: Any
    ) -> spb.PreviewScheduleResponse:
        auth = dict(context.invocation_metadata()).get("authorization", "")
        self.requests.append((request, auth))
        return spb.PreviewScheduleResponse(
            description="from the scheduler", next_fire_times=[to_timestamp(d) for d in FIXED]
        )


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[FakeScheduler, str]]:
    """A fake scheduler on a loopback port."""
    server = grpc.aio.server()
    fake = FakeScheduler()
    spb_grpc.add_SchedulerServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(0)


async def test_preview_asks_the_scheduler_as_the_caller(
    scheduler: tuple[FakeScheduler, str],
) -> None:
    fake, address = scheduler
    client = SchedulerClient(address, timeout=2.0)
    try:
        preview = await PreviewBuilder(client).build(
            "caller-token", DEFINITION, trigger_descriptions={"webhook": "Fire on a POST."}
        )
    finally:
        await client.close()
    [(request, auth)] = fake.requests
    assert auth == "Bearer caller-token"
    assert (request.cron, request.timezone, request.count) == ("0 9 * * 1", "Europe/Zurich", 3)
    assert (request.on_missing, request.on_repeated) == ("shift", "first")
    assert preview.triggers[0].description == "from the scheduler"
    assert preview.triggers[0].next_fire_times == FIXED
    assert preview.triggers[1].description == "webhook: Fire on a POST."
    assert [(s.id, s.action, s.when) for s in preview.steps] == [
        ("a", "log", ""),
        ("b", "wait", "{{ true }}"),
    ]
    assert preview.json.startswith('{\n  "name": "x"')
    assert preview.changes == []


async def test_preview_falls_back_to_autom_schedule_when_scheduler_is_down() -> None:
    client = SchedulerClient("127.0.0.1:1", timeout=2.0)
    try:
        preview = await PreviewBuilder(client).build("t", DEFINITION)
    finally:
        await client.close()
    trigger = preview.triggers[0]
    local = local_schedule_preview(
        cron="0 9 * * 1",
        timezone="Europe/Zurich",
        on_missing="shift",
        on_repeated="first",
        count=3,
    )
    assert trigger.description == local.description and "Europe/Zurich" in trigger.description
    assert len(trigger.next_fire_times) == 3
    assert all(t.weekday() == 0 for t in trigger.next_fire_times)
    assert trigger.next_fire_times[0] > datetime.now(UTC)


async def test_preview_lists_changes_against_a_base() -> None:
    base = {**DEFINITION, "plan": DEFINITION["plan"][:1]}
    preview = await PreviewBuilder(None).build("t", DEFINITION, base=base)
    assert preview.changes == ["step b: added (wait)"]
