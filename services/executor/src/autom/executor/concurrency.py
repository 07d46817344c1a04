"""Concurrency policies per automation: allow, skip, buffer_one, buffer_all, cancel_other."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text

from autom.core import metrics
from autom.core.bus import Backoff
from autom.executor.errors import LeaseLost, RunCancelled
from autom.executor.sources import Snapshot
from autom.executor.store import RunStore

if TYPE_CHECKING:
    from autom.executor.engine import Engine, RunState
    from autom.executor.worker import Worker

log = logging.getLogger(__name__)

POLICIES = ("allow", "skip", "buffer_one", "buffer_all", "cancel_other")
Decision = Literal["run", "done", "lost", "wait"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('executor.concurrency:' || :aid))"
# Admitted runs of the automation that are executing (not waiting for admission).
_RUNNING = (
    "SELECT id FROM executor.runs WHERE automation_id = :aid AND id <> :id "
    "AND status = 'running' AND NOT buffered"
)
# Runs waiting in the buffer (older than `me` when :before is set).
_WAITING = (
    "SELECT id FROM executor.runs WHERE automation_id = :aid AND id <> :id "
    "AND status IN ('pending', 'running') AND buffered AND created_at < :created"
)


class Concurrency:
    """Admits a newly claimed run according to its automation's policy."""

    def __init__(
        self,
        store: RunStore,
        engine: Engine,
        *,
        recheck_initial_seconds: float = 0.2,
        recheck_max_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._engine = engine
        self._recheck = Backoff(recheck_initial_seconds, recheck_max_seconds)

    def recheck_delay(self, deliveries: int) -> float:
        """When a waiting run's fire comes back to ask again (doubling, capped)."""
        return self._recheck.delay(deliveries)

    @staticmethod
    def policy(snapshot: Snapshot | None) -> str:
        """The automation's policy (allow when unset or unknown)."""
        if snapshot is None:
            return "allow"
        value = str((snapshot.definition.get("execution") or {}).get("concurrency") or "allow")
        return value if value in POLICIES else "allow"

    async def admit(self, state: RunState, policy: str, worker: Worker) -> Decision:
        """run: go ahead; done: ended (skipped/cancelled); lost: lease; wait: parked, no lease."""
        # A parked run holds no slot: the caller naks its fire with a delay to ask again.
        row = state.row
        params = {"aid": row.automation_id, "id": row.id, "created": row.created_at}
        if isinstance(state.interrupt, LeaseLost):
            return "lost"
        if row.cancel_requested and state.interrupt is None:
            state.stop(RunCancelled(row.cancel_reason or "cancel requested"))
        if isinstance(state.interrupt, RunCancelled):
            await self._engine.finish(state, "cancelled", error=state.interrupt.detail())
            return "done"
        async with self._store.engine.begin() as conn:
            await conn.execute(text(_LOCK), params)
            running = [r.id for r in (await conn.execute(text(_RUNNING), params)).all()]
            waiting = [r.id for r in (await conn.execute(text(_WAITING), params)).all()]
            action = self._decide(policy, running, waiting)
            if action == "admit":
                ok = await conn.execute(
                    text(
                        "UPDATE executor.runs SET status = 'running', buffered = false "
                        "WHERE id = :id AND lease_token = :token"
                    ),
                    {"id": row.id, "token": state.token},
                )
                if not ok.rowcount:
                    return "lost"
                if policy == "cancel_other" and running:
                    await conn.execute(
                        text(
                            "UPDATE executor.runs SET cancel_requested = true, "
                            "cancel_reason = :reason WHERE id = ANY(CAST(:ids AS text[]))"
                        ),
                        {"ids": running, "reason": f"cancelled by newer run {row.id}"},
                    )
            elif action == "wait":
                # Parked: no lease (a cancel finishes it at once) and a fresh timestamp, so
                # the orphan sweep re-publishes it only if its fire stops coming back.
                parked = await conn.execute(
                    text(
                        "UPDATE executor.runs SET status = 'pending', lease_token = NULL, "
                        "lease_expires_at = now() "
                        "WHERE id = :id AND lease_token = :token AND status = 'running'"
                    ),
                    {"id": row.id, "token": state.token},
                )
                if not parked.rowcount:
                    return "lost"
        if action == "admit":
            for other in running if policy == "cancel_other" else []:
                worker.cancel_local(other, f"cancelled by newer run {row.id}")
            return "run"
        if action == "skip":
            await self._engine.finish(
                state,
                "skipped",
                error={
                    "type": "ConcurrencySkip",
                    "message": f"skipped: concurrency {policy} and another run is active",
                    "retryable": False,
                    "fields": [],
                },
            )
            metrics.FIRES.labels("skipped").inc()
            return "done"
        # The lease is given back: this worker no longer touches the run.
        state.finished = True
        return "wait"

    @staticmethod
    def _decide(policy: str, running: list[Any], waiting: list[Any]) -> str:
        if policy == "skip":
            return "skip" if running else "admit"
        if policy == "cancel_other":
            return "admit"
        if policy == "buffer_one":
            if not running and not waiting:
                return "admit"
            return "skip" if waiting else "wait"
        if policy == "buffer_all":
            return "admit" if not running and not waiting else "wait"
        return "admit"
