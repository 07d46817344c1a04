"""Group commit: concurrent callers' items written together, each caller awaiting its own result.

A flush starts as soon as the first item is queued (after one turn of the event loop, so
callers scheduled together share it); items queued while a flush is under way go into the
next one. Under load a batch grows to `max_size`, so one transaction (one fsync) serves many
callers; alone, a caller waits for its own flush only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[list[T]], Awaitable[Sequence[R]]]


class _Alone(Exception):
    """The item's batch failed as a whole: the item is to be written by itself."""


class Batcher(Generic[T, R]):
    """Queues items and flushes them in batches with `flush` (one result per item, in order).

    A flush that raises fails every caller of its batch with that exception, and only them:
    nothing of a failed batch is reported done, so callers retry or redeliver as they would
    after their own write failed. With `alone`, a batch of several that fails with one of
    `retry_alone` is written again item by item instead, each caller getting its own answer
    (a batch refused for one bad item says neither which item nor whether the others fit).
    """

    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_size: int = 100,
        alone: Callable[[T], Awaitable[R]] | None = None,
        retry_alone: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    ) -> None:
        self._flush = flush
        self._max = max_size
        self._alone = alone
        self._retry_alone = retry_alone
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once the batch holding it is flushed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        try:
            return await future
        except _Alone:
            assert self._alone is not None
            return await self._alone(item)

    async def _drain(self) -> None:
        # Let the callers woken with this one queue their items before the first flush.
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            # A caller that gave up (cancelled) has nothing left to write.
            batch = [(item, future) for item, future in batch if not future.done()]
            if not batch:
                continue
            try:
                results = await self._flush([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"flush returned {len(results)} results for {len(batch)}")
            except asyncio.CancelledError:
                for _, future in batch + self._queue:
                    future.cancel()
                self._queue = []
                raise
            except Exception as exc:
                alone = (
                    self._alone is not None
                    and len(batch) > 1
                    and isinstance(exc, self._retry_alone)
                )
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_Alone() if alone else exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
