"""Group commit: each caller gets its own result; a failed batch fails or retries alone."""

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


async def test_with_alone_a_failed_batch_is_written_again_item_by_item() -> None:
    batches: list[list[str]] = []
    alone: list[str] = []

    async def flush(items: list[str]) -> list[str]:
        batches.append(items)
        if "bad" in items:
            raise ValueError("batch refused")
        return [s.upper() for s in items]

    async def one(item: str) -> str:
        alone.append(item)
        if item == "bad":
            raise ValueError("bad alone")
        return item.upper()

    batcher: Batcher[str, str] = Batcher(flush, alone=one, retry_alone=ValueError)
    results = await asyncio.gather(
        *(batcher.submit(s) for s in ("a", "bad", "c")), return_exceptions=True
    )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad alone"
    assert batches == [["a", "bad", "c"]] and sorted(alone) == ["a", "bad", "c"]
    # A batch of one already was alone: its error is the caller's, with no second try.
    with pytest.raises(ValueError, match="batch refused"):
        await batcher.submit("bad")
    assert sorted(alone) == ["a", "bad", "c"]


async def test_errors_other_than_retry_alone_fail_the_whole_batch() -> None:
    async def flush(items: list[str]) -> list[str]:
        raise ConnectionError("gone")

    async def one(item: str) -> str:
        raise AssertionError("not retried alone")

    batcher: Batcher[str, str] = Batcher(flush, alone=one, retry_alone=ValueError)
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
