"""Lease heartbeats under load: no lock waits, no false "lease lost" for a finishing run."""

from __future__ import annotations

import asyncio
from typing import Any

from autom.executor.concurrency import Concurrency
from autom.executor.errors import LeaseLost
from autom.executor.worker import Worker

Harness = Any

_PLAN = {"plan": [{"id": "s", "action": "transform", "params": {"output": "ok"}}]}
_LEASES = "SELECT id, lease_expires_at FROM executor.runs WHERE id = ANY($1::text[])"


async def _leases(harness: Harness, *ids: str) -> dict[str, Any]:
    return {r["id"]: r["lease_expires_at"] for r in await harness.store.pool.fetch(_LEASES, ids)}


async def _until_a_lock_wait(harness: Harness) -> None:
    """Until some statement waits on a lock (polled: the server announces no such thing)."""
    while True:
        waiting = await harness.store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)


async def test_heartbeat_never_waits_on_a_run_being_written(harness: Harness) -> None:
    snapshot = harness.automation(_PLAN)
    busy = await harness.claim(harness.new_run(snapshot))
    idle = await harness.claim(harness.new_run(snapshot))
    before = await _leases(harness, busy.run_id, idle.run_id)
    leases = {busy.run_id: busy.token, idle.run_id: idle.token}
    # Another transaction (a grouped commit, say) holds the row of one run meanwhile:
    # waiting on it could deadlock with that transaction's next statement.
    async with harness.store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM executor.runs WHERE id = $1 FOR UPDATE", busy.run_id)
        alive = await asyncio.wait_for(harness.store.heartbeat(leases, 120.0), 60)
    assert alive == {busy.run_id: False, idle.run_id: False}
    after = await _leases(harness, busy.run_id, idle.run_id)
    assert after[idle.run_id] > before[idle.run_id]
    # Not extended, but still ours: the write holding it extends the lease itself.
    assert after[busy.run_id] == before[busy.run_id]


async def test_heartbeat_reports_a_lease_another_worker_took(harness: Harness) -> None:
    snapshot = harness.automation(_PLAN)
    state = await harness.claim(harness.new_run(snapshot))
    await harness.store.pool.execute(
        "UPDATE executor.runs SET lease_token = 'another-worker' WHERE id = $1", state.run_id
    )
    assert await harness.store.heartbeat({state.run_id: state.token}, 30.0) == {}


def _worker(harness: Harness) -> Worker:
    return Worker(
        store=harness.store,
        engine=harness.engine,
        definitions=harness.definitions,
        concurrency=Concurrency(harness.store, harness.engine),
        lease_seconds=30.0,
        ack_wait_seconds=30.0,
        cancel_poll_seconds=1.0,
    )


async def test_the_terminal_write_is_marked_in_flight(harness: Harness) -> None:
    state = await harness.claim(harness.new_run(harness.automation(_PLAN)))
    # The terminal write blocks on a row lock: in flight, not yet committed.
    async with harness.store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT 1 FROM executor.runs WHERE id = $1 FOR UPDATE", state.run_id)
        finish = asyncio.ensure_future(harness.engine.finish(state, "succeeded"))
        await _until_a_lock_wait(harness)
        assert state.finishing and not state.finished
        await tx.commit()
    await finish
    assert state.finished and not state.finishing


async def test_a_run_whose_terminal_write_committed_is_not_lost(harness: Harness) -> None:
    snapshot = harness.automation(_PLAN)
    done = await harness.claim(harness.new_run(snapshot))
    taken = await harness.claim(harness.new_run(snapshot))
    worker = _worker(harness)
    worker.active = {done.run_id: (done, None), taken.run_id: (taken, None)}
    # The terminal write committed (the lease released with it) and the engine has not seen
    # its reply yet when the heartbeat runs.
    assert await harness.store.write(done.run_id, done.token, status="succeeded")
    done.finishing = True
    await harness.store.pool.execute(
        "UPDATE executor.runs SET lease_token = 'another-worker' WHERE id = $1", taken.run_id
    )
    await worker._extend()
    assert done.interrupt is None
    assert isinstance(taken.interrupt, LeaseLost)
