"""The executor reads a workspace's quota limits once per expiry, however many runs ask."""

from __future__ import annotations

import asyncio
from typing import Any

from autom.executor.quotas import RunQuotas


class SlowLimits:
    """Definitions' GetWorkspaceQuotas held in memory: no limits, counted, answered late."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = asyncio.Event()

    async def workspace_quotas(self, workspace_id: str) -> tuple[dict[str, float], int]:
        self.calls += 1
        await self.answer.wait()
        return {"concurrent_runs": 0.0}, 0


async def test_runs_asking_while_the_limits_are_read_share_that_one_read() -> None:
    source = SlowLimits()
    # Without limits the store is never consulted.
    store: Any = None
    quotas = RunQuotas(store, source, ttl_seconds=0)
    asking = [asyncio.ensure_future(quotas.refusal("ws")) for _ in range(50)]
    await asyncio.sleep(0)
    source.answer.set()
    assert await asyncio.gather(*asking) == [None] * 50
    assert source.calls == 1
    # Expired (ttl 0): the next run reads again.
    assert await quotas.refusal("ws") is None
    assert source.calls == 2
