"""Publishes committed fire events from the outbox; any replica may run it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core.bus import publish_batch, wait_any
from autom.scheduler import db

log = logging.getLogger(__name__)


class FireRelay:
    """Outbox relay that deletes published rows and stamps fires.published_at.

    Unlike the core relay it honours `created_at` as a release time (rate-limited
    backfills) and keeps the outbox small, which keeps the hot path's index tiny.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        js: JetStreamContext,
        batch_size: int = 1000,
        poll_interval: float = 0.25,
    ) -> None:
        self._engine = engine
        self._js = js
        self._batch = batch_size
        self._poll = poll_interval
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Wake the relay after a commit that wrote outbox rows."""
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of released rows; returns how many were published."""
        o = db.outbox
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(o.c.id, o.c.subject, o.c.msg_id, o.c.payload)
                    .where(o.c.published_at.is_(None), o.c.created_at <= now)
                    .order_by(o.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await publish_batch(self._js, [(r.subject, r.payload, r.msg_id) for r in rows])
            acked = datetime.now(UTC)
            await conn.execute(delete(o).where(o.c.id.in_([r.id for r in rows])))
            await conn.execute(
                update(db.fires)
                .where(db.fires.c.fire_id.in_([r.msg_id for r in rows]))
                .values(published_at=acked)
            )
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until stop is set; failures are logged and retried (rows stay pending)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                while await self.publish_pending() == self._batch:
                    pass
            except Exception:
                log.exception("fire relay failed; will retry")
                await wait_any(stop, None, 1.0)
                continue
            await wait_any(stop, self._wake, await self._until_next_release())

    async def _until_next_release(self) -> float:
        """Seconds until the earliest pending row is released, at most the poll interval."""
        o = db.outbox
        async with self._engine.connect() as conn:
            first = (
                await conn.execute(
                    select(func.min(o.c.created_at)).where(o.c.published_at.is_(None))
                )
            ).scalar_one_or_none()
        if first is None:
            return self._poll
        delay: float = (first - datetime.now(UTC)).total_seconds()
        return max(0.0, min(self._poll, delay))
