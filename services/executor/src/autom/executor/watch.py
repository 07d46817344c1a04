"""Wakes WatchRun streams when an event of their run goes by on NATS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from autom.api.events.v1 import events_pb2

log = logging.getLogger(__name__)

RUN_EVENTS = "automations.runs.>"


class RunWatchers:
    """The runs watched in this process, woken by a core NATS subscription on run events.

    Run events are published from the outbox after their change committed, so a woken watcher
    reads what the event announces. The subscription exists only while someone watches; a
    watcher must still re-check now and then, as core NATS may drop an event.
    """

    def __init__(self, nc: NATS | None) -> None:
        self._nc = nc
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever an event of `run_id` arrives, until the block exits."""
        wake = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(wake)
        try:
            await self._subscribe()
            yield wake
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.discard(wake)
                if not waiters:
                    del self._waiters[run_id]
            if not self._waiters:
                await self._unsubscribe()

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._sub is not None or self._nc is None or not self._waiters:
                return
            try:
                self._sub = await self._nc.subscribe(RUN_EVENTS, cb=self._on_event)
            except Exception:
                # Watchers still see changes through their periodic re-check.
                log.warning("cannot subscribe to run events; watchers fall back to re-checks")

    async def _unsubscribe(self) -> None:
        async with self._lock:
            if self._sub is None or self._waiters:
                return
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def wake(self, run_id: str) -> None:
        """Wake the watchers of a run whose change has committed (no-op when none)."""
        for wake in self._waiters.get(run_id, ()):
            wake.set()

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = events_pb2.RunEvent.FromString(msg.data)
        except DecodeError:
            return
        self.wake(event.run_id)
