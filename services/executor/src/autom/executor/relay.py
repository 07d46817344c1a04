"""The executor's outbox relay: core's OutboxRelay over the hot path's asyncpg pool.

Run events are the executor's hottest NATS traffic (three per run), so the batch is read and
marked with raw asyncpg statements; rows are marked published only after JetStream
acknowledged every one of them.
"""

from __future__ import annotations

import asyncpg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from autom.core.bus import OutboxRelay, publish_batch
from autom.executor import db

_SELECT = (
    "SELECT id, subject, msg_id, payload FROM executor.outbox WHERE published_at IS NULL "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)
_MARK = "UPDATE executor.outbox SET published_at = now() WHERE id = ANY($1::bigint[])"


class PipelinedRelay(OutboxRelay):
    """OutboxRelay whose batches are published pipelined (same guarantees, fewer waits)."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        ack_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            engine=engine,
            table=db.outbox,
            js=js,
            batch_size=batch_size,
            poll_interval=poll_interval,
        )
        self._pool = pool
        self._jsc = js
        self._batch_size = batch_size
        self._ack_timeout = ack_timeout

    async def publish_pending(self) -> int:
        """Publish one batch; rows stay unpublished unless every ack arrived."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_SELECT, self._batch_size)
            if not rows:
                return 0
            await publish_batch(
                self._jsc,
                [(r["subject"], r["payload"], r["msg_id"]) for r in rows],
                timeout=self._ack_timeout,
            )
            await conn.execute(_MARK, [r["id"] for r in rows])
        return len(rows)
