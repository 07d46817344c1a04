"""Workspace quotas the executor enforces: runs per minute, active runs, LLM spend, webhooks.

The limits belong to the definitions service (set by the deployment admin); they are read
per workspace and kept for a few seconds, so a change applies within that bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from autom.core.errors import QuotaExceeded
from autom.core.quotas import reached
from autom.executor.store import RunStore

log = logging.getLogger(__name__)

# Quotas checked before a run is created, in this order.
RUN_QUOTAS = ("concurrent_runs", "runs_per_minute", "llm_spend_usd_per_day")


def quota_error(refusal: QuotaExceeded) -> dict[str, Any]:
    """The error of a run a quota refused (recorded as skipped)."""
    return {
        "type": "QuotaExceeded",
        "message": refusal.message,
        "retryable": False,
        "fields": [refusal.limit_name],
    }


def webhook_counter(workspace_id: str) -> str:
    """The rate counter of a workspace's webhook deliveries."""
    return f"webhooks:{workspace_id}"


class QuotaSource(Protocol):
    """The effective limits of a workspace and its active automations."""

    async def workspace_quotas(self, workspace_id: str) -> tuple[dict[str, float], int]:
        """Limits by quota name (0: no limit), and active automations now."""
        ...


class RunQuotas:
    """Answers whether a workspace may start one more run (or take one more delivery)."""

    def __init__(self, store: RunStore, source: QuotaSource, *, ttl_seconds: float = 2.0) -> None:
        self._store = store
        self._source = source
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, dict[str, float], int]] = {}
        # One read per workspace at a time: when the entry expires under load, every run in
        # flight would otherwise ask definitions at once.
        self._asking: dict[str, asyncio.Future[tuple[dict[str, float], int]]] = {}

    async def _limits(self, workspace_id: str) -> tuple[dict[str, float], int]:
        hit = self._cache.get(workspace_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1], hit[2]
        asking = self._asking.get(workspace_id)
        if asking is not None:
            return await asyncio.shield(asking)
        future = asyncio.ensure_future(self._read(workspace_id, hit))
        self._asking[workspace_id] = future
        future.add_done_callback(lambda _: self._asking.pop(workspace_id, None))
        return await asyncio.shield(future)

    async def _read(
        self, workspace_id: str, hit: tuple[float, dict[str, float], int] | None
    ) -> tuple[dict[str, float], int]:
        now = time.monotonic()
        try:
            limits, active = await self._source.workspace_quotas(workspace_id)
        except Exception as exc:
            # Definitions unreachable: keep running on the last limits known (or none), so
            # an outage there never stops fires here; the limits apply again once it is back.
            log.warning(
                "workspace %s quotas unavailable (%s); using the last known", workspace_id, exc
            )
            return (hit[1], hit[2]) if hit is not None else ({}, 0)
        self._cache[workspace_id] = (now, limits, active)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return limits, active

    async def usage(self, workspace_id: str) -> list[tuple[str, float, float]]:
        """(name, current, limit) of every quota."""
        limits, active = await self._source.workspace_quotas(workspace_id)
        used = await self._store.workspace_usage(workspace_id, webhook_counter(workspace_id))
        used["active_automations"] = float(active)
        # An interval has no "current" of its own: it is checked when a schedule is saved.
        used["min_schedule_interval_seconds"] = 0.0
        return [(name, used.get(name, 0.0), limit) for name, limit in limits.items()]

    async def refusal(self, workspace_id: str) -> QuotaExceeded | None:
        """The quota one more run would pass, or None."""
        limits, _ = await self._limits(workspace_id)
        if not any(limits.get(name) for name in RUN_QUOTAS):
            return None
        used = await self._store.workspace_usage(workspace_id, webhook_counter(workspace_id))
        for name in RUN_QUOTAS:
            if reached(used[name], limits.get(name, 0.0)):
                return QuotaExceeded(workspace_id, name, used[name], limits[name])
        return None

    async def check_webhook(self, workspace_id: str) -> None:
        """Count one delivery to the workspace; raise past webhook_requests_per_minute."""
        limits, _ = await self._limits(workspace_id)
        limit = limits.get("webhook_requests_per_minute", 0.0)
        if limit <= 0:
            return
        count = await self._store.hit(webhook_counter(workspace_id))
        if count > limit:
            raise QuotaExceeded(workspace_id, "webhook_requests_per_minute", count - 1, limit)
