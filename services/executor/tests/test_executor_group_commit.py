"""Group commit: the hot-path statements of concurrent runs share one transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

Harness = Any

# The transaction of every row version written to executor.runs.
_XID_LOG = """
CREATE TABLE public.xid_log (run_id text, op text, xid bigint);
CREATE FUNCTION public.log_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.xid_log VALUES (NEW.id, TG_OP, txid_current());
    RETURN NEW;
END $$;
CREATE TRIGGER log_xid AFTER INSERT OR UPDATE ON executor.runs
    FOR EACH ROW EXECUTE FUNCTION public.log_xid();
"""

# Refuses to insert a run whose fire id says so (a statement the server rejects).
_REFUSE = """
CREATE FUNCTION public.refuse_fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.fire_id LIKE 'refused-%' THEN
        RAISE EXCEPTION 'refused by the test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_fire BEFORE INSERT ON executor.runs
    FOR EACH ROW EXECUTE FUNCTION public.refuse_fire();
"""


def _plan() -> dict[str, Any]:
    return {"plan": [{"id": "s", "action": "transform", "params": {"output": "ok"}}]}


async def test_runs_claimed_and_finished_together_share_transactions(harness: Harness) -> None:
    await harness.store.pool.execute(_XID_LOG)
    snapshot = harness.automation(_plan())
    news = [harness.new_run(snapshot) for _ in range(20)]
    states = await asyncio.gather(*(harness.claim(n) for n in news))
    await asyncio.gather(*(harness.engine.execute(s, pending_events=[]) for s in states))
    for new in news:
        row = await harness.store.get(new.id)
        assert row is not None and row.status == "succeeded"
    log = await harness.store.pool.fetch("SELECT run_id, op, xid FROM public.xid_log")
    claims = {r["xid"] for r in log if r["op"] == "INSERT"}
    assert {r["run_id"] for r in log} == {n.id for n in news}
    # Twenty claims issued together: fewer transactions than runs (one each without the group).
    assert len(claims) < len(news), len(claims)
    # Their terminal writes too.
    finishes = {r["xid"] for r in log if r["op"] == "UPDATE"}
    assert len(finishes) < len(news), len(finishes)


async def test_a_refused_statement_fails_only_its_caller(harness: Harness) -> None:
    await harness.store.pool.execute(_REFUSE)
    snapshot = harness.automation(_plan())
    good = [harness.new_run(snapshot) for _ in range(6)]
    bad = harness.new_run(snapshot, fire_id="refused-1")
    results = await asyncio.gather(
        *(harness.store.create_pending(n, []) for n in [*good[:3], bad, *good[3:]]),
        return_exceptions=True,
    )
    assert isinstance(results[3], asyncpg.PostgresError), results[3]
    created = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, tuple) and r[1] for r in created), created
    for new in good:
        assert await harness.store.by_fire(new.fire_id) is not None
    assert await harness.store.by_fire(bad.fire_id) is None


@pytest.mark.parametrize("size", [1, 3])
async def test_a_group_answers_each_statement_with_its_own_rows(
    harness: Harness, size: int
) -> None:
    snapshot = harness.automation(_plan())
    news = [harness.new_run(snapshot) for _ in range(size)]
    results = await asyncio.gather(*(harness.store.create_pending(n, []) for n in news))
    assert [row.id for row, _ in results] == [n.id for n in news]
    assert all(created for _, created in results)
    # Again: the same fires find their runs (the conflict path answers per statement too).
    again = await asyncio.gather(*(harness.store.create_pending(n, []) for n in news))
    assert [(row.id, created) for row, created in again] == [(n.id, False) for n in news]
