"""Feeds every service's RevocationList from the auth stream: revoked tokens, member changes."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from autom.api.events.v1 import events_pb2
from autom.core import bus
from autom.core.auth import RevocationList, Role
from autom.core.bus import AUTH_STREAM

log = logging.getLogger(__name__)
SUBJECT = "automations.auth.token_revoked"
MEMBER_SUBJECT = "automations.auth.member_changed"


def revocation_feed(js: JetStreamContext, revocations: RevocationList) -> RevocationFeed:
    """A background loop replaying every revocation, then following new ones."""
    return RevocationFeed(js, revocations)


class RevocationFeed:
    """An ephemeral ordered consumer over the auth stream (each replica sees everything)."""

    def __init__(self, js: JetStreamContext, revocations: RevocationList) -> None:
        self._js = js
        self._revocations = revocations

    async def _on_msg(self, msg: Msg) -> None:
        if (origin := bus.republished_from(msg)) is not None:
            log.warning("ignoring an auth event republished by stream %s", origin)
            return
        try:
            if msg.subject == MEMBER_SUBJECT:
                member = events_pb2.MemberChangedEvent()
                member.ParseFromString(msg.data)
                role = Role(member.role) if member.role else None
                changed_at = member.change_time.seconds + member.change_time.nanos / 1e9
                self._revocations.set_member(
                    member.workspace_id, member.principal, role, changed_at
                )
                return
            event = events_pb2.TokenRevokedEvent()
            event.ParseFromString(msg.data)
        except Exception:
            log.warning("ignoring malformed auth event on %s", msg.subject)
            return
        self._revocations.revoke(event.token_id, event.expire_time.seconds or float("inf"))

    async def start(self) -> None:
        """Subscribe; returns once the subscription exists (replay continues in the background)."""
        self._sub = await self._js.subscribe(
            AUTH_STREAM.subjects[0],
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_msg,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Follow revocations until stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self._sub.unsubscribe()
