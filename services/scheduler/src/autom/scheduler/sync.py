"""Full resync of schedule state from the definitions service over gRPC."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.core.bus import Backoff, wait_any
from autom.core.errors import Unavailable
from autom.core.grpcserver import starting_up
from autom.scheduler.convert import change_from_listing
from autom.scheduler.service import SchedulerService, SyncResult

log = logging.getLogger(__name__)

# Automations per streamed chunk: each chunk is applied in one transaction, then dropped.
CHUNK_SIZE = 100
# The whole stream's deadline: a hung definitions service must not hold SyncAll forever.
STREAM_DEADLINE_S = 600.0


class Resync:
    """Streams every automation's schedule triggers (service token: all workspaces)."""

    def __init__(self, service: SchedulerService, channel: grpc.aio.Channel) -> None:
        self._service = service
        self._stub = dpb_grpc.DefinitionsServiceStub(channel)

    async def run_once(self) -> SyncResult:
        """One full resync; Unavailable when the definitions service cannot be reached.

        Memory stays bounded by one chunk: applied automations are stamped with this
        resync's generation, and only after the whole stream arrived are the live ones left
        unstamped swept (an interrupted resync removes nothing).
        """
        generation = await self._service.begin_sync()
        result = SyncResult()
        stream = self._stub.StreamScheduleTriggers(
            dpb.StreamScheduleTriggersRequest(chunk_size=CHUNK_SIZE), timeout=STREAM_DEADLINE_S
        )
        try:
            async for chunk in stream:
                changes = [change_from_listing(item) for item in chunk.automations]
                result.upserted += await self._service.apply_listed(changes, generation)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"definitions service: {exc.code().name}: {exc.details()}") from exc
        finally:
            stream.cancel()
        result.removed = await self._service.sweep(generation)
        log.info("resync: %d schedule(s) upserted, %d removed", result.upserted, result.removed)
        return result

    async def run_until_done(self, stop: asyncio.Event, retry_s: float) -> None:
        """Resync at start; while definitions is unreachable, log and keep retrying."""
        started = time.monotonic()
        # Definitions usually comes up within a second or two of us: retry soon, then back off.
        backoff = Backoff(base_s=min(0.25, retry_s), cap_s=retry_s)
        attempt = 0
        while not stop.is_set():
            try:
                await self.run_once()
                return
            except Exception as exc:
                attempt += 1
                delay = backoff.delay(attempt)
                level = logging.INFO if starting_up(exc, started) else logging.WARNING
                log.log(level, "resync from definitions failed (%s); retrying in %.1fs", exc, delay)
            await wait_any(stop, None, delay)
