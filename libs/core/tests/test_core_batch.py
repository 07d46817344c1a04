"""Group commit: each caller gets its own result; a failed batch fails all of its callers."""

from __future__ import annotations

import asyncio

import pytest

from autom.core.batch import Batcher


async def test_concurrent_callers_share_a_flush_and_each_gets_its_own_result() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [i * 10 for i in range(20)]
    assert flushed == [list(range(20))]


async def test_items_queued_during_a_flush_go_into_the_next_one_up_to_max_size() -> None:
    flushed: list[list[int]] = []
    gate, flushing = asyncio.Event(), asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        flushing.set()
        await gate.wait()
        return items

    batcher: Batcher[int, int] = Batcher(flush, max_size=3)
    first = asyncio.ensure_future(batcher.submit(0))
    await flushing.wait()
    later = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [1, 2, 3, 4, 5]
    assert flushed == [[0], [1, 2, 3], [4, 5]]


async def test_a_failing_batch_fails_every_caller_of_it_and_only_them() -> None:
    calls: list[list[str]] = []

    async def flush(items: list[str]) -> list[str]:
        calls.append(items)
        if "bad" in items:
            raise ValueError("batch refused")
        return [s.upper() for s in items]

    batcher: Batcher[str, str] = Batcher(flush)
    failed = await asyncio.gather(
        *(batcher.submit(s) for s in ("a", "bad", "c")), return_exceptions=True
    )
    assert [type(r) for r in failed] == [ValueError] * 3
    # Nothing of the failed batch was reported done: a retry writes every item again.
    assert await asyncio.gather(batcher.submit("a"), batcher.submit("c")) == ["A", "C"]
    assert calls == [["a", "bad", "c"], ["a", "c"]]


async def test_a_cancelled_caller_is_left_out_of_the_flush() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return items

    batcher: Batcher[int, int] = Batcher(flush)
    gone = asyncio.ensure_future(batcher.submit(1))
    kept = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert flushed == [[2]]


async def test_a_flush_with_the_wrong_number_of_results_fails_its_callers() -> None:
    async def flush(items: list[int]) -> list[int]:
        return items[:1]

    batcher: Batcher[int, int] = Batcher(flush)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
