"""Dead letters: fire messages that cannot be decoded, parked in a JetStream stream.

The stream, not the database, holds them, so parking a poison message works while
PostgreSQL is down; only undecodable messages land here (every other failure is retried).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from autom.core import bus

log = logging.getLogger(__name__)

SUBJECT = "automations.deadletters.fires"
REASON = "Autom-Reason"
ORIGIN = "Autom-Subject"
DELIVERIES = "Autom-Deliveries"


@dataclass(frozen=True)
class DeadLetter:
    """One parked message as read back from the stream."""

    sequence: int
    subject: str
    reason: str
    payload: bytes
    deliveries: int
    time: datetime | None


def _header(value: str) -> str:
    # Header values are single lines.
    return " ".join(value.split())[:1000]


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            # JetStream's RFC 3339 time may carry nanoseconds; microseconds are enough.
            head, _, frac = value.rstrip("Z").partition(".")
            text = f"{head}.{frac[:6]}" if frac else head
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


class DeadLetters:
    """Parks undecodable messages and pages through them."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def park(self, msg: Msg, reason: str, deliveries: int) -> None:
        """Copy the message into the dead-letter stream (deduplicated per original message)."""
        try:
            meta = msg.metadata
            origin = f"{meta.stream}:{meta.sequence.stream}"
        except Exception:
            origin = msg.subject
        await self._js.publish(
            SUBJECT,
            msg.data,
            timeout=5.0,
            headers={
                bus.MSG_ID: f"deadletter:{origin}",
                REASON: _header(reason),
                ORIGIN: msg.subject,
                DELIVERIES: str(deliveries),
            },
        )

    async def list(self, after: int, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead letters with a sequence above `after`, oldest first."""
        found: list[DeadLetter] = []
        seq = after + 1
        while len(found) < limit:
            try:
                raw = await self._js.get_msg(
                    bus.DEAD_LETTERS_STREAM.name, seq=seq, subject=SUBJECT, next=True
                )
            except nats.js.errors.NotFoundError:
                break
            headers = raw.headers or {}
            found.append(
                DeadLetter(
                    sequence=int(raw.seq or seq),
                    subject=headers.get(ORIGIN, ""),
                    reason=headers.get(REASON, ""),
                    payload=raw.data or b"",
                    deliveries=int(headers.get(DELIVERIES, "0") or 0),
                    time=_time(raw.time),
                )
            )
            seq = int(raw.seq or seq) + 1
        return found
