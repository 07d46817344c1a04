"""Feeds every service's RevocationList from `automations.auth.token_revoked` events."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from autom.api.events.v1 import events_pb2
from autom.core.auth import RevocationList

log = logging.getLogger(__name__)
SUBJECT = "automations.auth.token_revoked"


def revocation_feed(js: JetStreamContext, revocations: RevocationList) -> RevocationFeed:
    """A background loop replaying every revocation, then following new ones."""
    return RevocationFeed(js, revocations)


class RevocationFeed:
    """An ephemeral ordered consumer over the auth stream (each replica sees everything)."""

    def __init__(self, js: JetStreamContext, revocations: RevocationList) -> None:
        self._js = js
        self._revocations = revocations

    async def _on_msg(self, msg: Msg) -> None:
        event = events_pb2.TokenRevokedEvent()
        try:
            event.ParseFromString(msg.data)
        except Exception:
            log.warning("ignoring malformed token revocation event")
            return
        self._revocations.revoke(event.token_id, event.expire_time.seconds or float("inf"))

    async def start(self) -> None:
        """Subscribe; returns once the subscription exists (replay continues in the background)."""
        self._sub = await self._js.subscribe(
            SUBJECT, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL, cb=self._on_msg
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Follow revocations until stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self._sub.unsubscribe()
