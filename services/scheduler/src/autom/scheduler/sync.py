"""Full resync of schedule state from the definitions service over gRPC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dpb_grpc
from autom.core.bus import wait_any
from autom.core.errors import Unavailable
from autom.scheduler.convert import change_from_automation
from autom.scheduler.domain.model import AutomationChange
from autom.scheduler.service import SchedulerService, SyncResult, utcnow

log = logging.getLogger(__name__)


class Resync:
    """Lists every automation (service token: all workspaces) and applies it."""

    def __init__(self, service: SchedulerService, channel: grpc.aio.Channel) -> None:
        self._service = service
        self._stub = dpb_grpc.DefinitionsServiceStub(channel)

    async def _listing(self) -> AsyncIterator[AutomationChange]:
        token = ""
        while True:
            page = await self._stub.ListAutomations(
                dpb.ListAutomationsRequest(page_size=500, page_token=token), timeout=30
            )
            for automation in page.automations:
                yield change_from_automation(automation)
            token = page.next_page_token
            if not token:
                return

    async def run_once(self) -> SyncResult:
        """One full resync; Unavailable when the definitions service cannot be reached."""
        started = utcnow()
        try:
            changes = [change async for change in self._listing()]
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"definitions service: {exc.code().name}: {exc.details()}") from exc
        result = await self._service.sync(changes, started)
        log.info("resync: %d schedule(s) upserted, %d removed", result.upserted, result.removed)
        return result

    async def run_until_done(self, stop: asyncio.Event, retry_s: float) -> None:
        """Resync at start; while definitions is unreachable, log and keep retrying."""
        while not stop.is_set():
            try:
                await self.run_once()
                return
            except Exception as exc:
                log.warning("resync from definitions failed (%s); retrying in %.0fs", exc, retry_s)
            await wait_any(stop, None, retry_s)
