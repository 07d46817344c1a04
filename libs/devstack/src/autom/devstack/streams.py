"""Test support: read a JetStream stream up to the last message it holds now."""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js import JetStreamContext


async def read_stream(js: JetStreamContext, stream: str, subject: str) -> list[Msg]:
    """Every message of `stream` up to its last sequence at call time, in order.

    Bounded by the sequence, not by a quiet period: publishers may keep going meanwhile.
    """
    last = (await js.stream_info(stream)).state.last_seq
    sub = await js.pull_subscribe(subject, stream=stream)
    out: list[Msg] = []
    try:
        while last:
            msgs = await sub.fetch(500, timeout=5.0)
            out.extend(m for m in msgs if m.metadata.sequence.stream <= last)
            if msgs[-1].metadata.sequence.stream >= last:
                break
        return out
    finally:
        await sub.unsubscribe()
