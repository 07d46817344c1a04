"""Previews: the scheduler's PreviewSchedule first, autom.schedule when it is unavailable."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from autom.core.auth import Role, TokenSigner
from autom.devstack.testing import start_service
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


@pytest.fixture
async def scheduler(database_url: str, nats_url: str, signing_key: str) -> AsyncIterator[str]:
    """The real scheduler service on a loopback port."""
    app = await start_service(
        "scheduler", database_url, nats_url, signing_key, definitions_addr="127.0.0.1:1"
    )
    yield app.address
    await app.stop()


async def _preview(address: str, token: str) -> Any:
    client = SchedulerClient(address, timeout=5.0)
    try:
        return await PreviewBuilder(client).build(
            token, DEFINITION, trigger_descriptions={"webhook": "Fire on a POST."}
        )
    finally:
        await client.close()


async def test_preview_asks_the_scheduler_as_the_caller(
    scheduler: str, signing_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caller = TokenSigner(signing_key).issue(
        subject="user:editor", workspace_id="default", role=Role.EDITOR
    )[0]
    with caplog.at_level(logging.INFO, logger="autom.drafter.preview"):
        preview = await _preview(scheduler, caller)
    # The scheduler answered (no fallback), with the same instants autom.schedule computes.
    assert "PreviewSchedule failed" not in caplog.text
    local = local_schedule_preview(
        cron="0 9 * * 1", timezone="Europe/Zurich", on_missing="shift", on_repeated="first", count=3
    )
    assert preview.triggers[0].description == local.description
    assert preview.triggers[0].next_fire_times == local.next_fire_times
    assert preview.triggers[1].description == "webhook: Fire on a POST."
    assert [(s.id, s.action, s.when) for s in preview.steps] == [
        ("a", "log", ""),
        ("b", "wait", "{{ true }}"),
    ]
    assert preview.json.startswith('{\n  "name": "x"')
    assert preview.changes == []

    # The caller's token is what the scheduler judges: a forged one is refused there.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="autom.drafter.preview"):
        fallback = await _preview(scheduler, "caller-token")
    assert "PreviewSchedule failed (UNAUTHENTICATED)" in caplog.text
    assert fallback.triggers[0].description == local.description


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
