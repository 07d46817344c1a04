"""transform, wait, log and emit_event."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from nats.js import JetStreamContext

from autom.core import bus
from autom.executor.actions.base import ActionContext
from autom.executor.domain.policy import seconds
from autom.executor.errors import StepError

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


async def transform(params: dict[str, Any], ctx: ActionContext) -> Any:
    """The rendered `output` is the step's output."""
    return params.get("output")


async def wait(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Sleep for `duration`; cancellation and timeouts interrupt it."""
    try:
        delay = seconds(params.get("duration"), 0.0) or 0.0
    except ValueError as exc:
        raise StepError(str(exc), retryable=False, type_name="ValidationError") from exc
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(delay)
    return {"waited_ms": round((loop.time() - started) * 1000, 3)}


async def log_message(params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Write the message to the executor's log with the run's context."""
    message = str(params.get("message", ""))
    level = _LEVELS.get(str(params.get("level") or "info"), logging.INFO)
    ctx.log.log(level, "step %s: %s", ctx.step_id, ctx.redact(message))
    return {"message": message}


class EmitEvent:
    """Publishes to `automations.custom.<workspace>.<subject>`, deduplicated per step."""

    def __init__(self, js: JetStreamContext | None) -> None:
        self._js = js

    async def __call__(self, params: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        if self._js is None:
            raise StepError("event bus is not connected", type_name="Unavailable")
        subject = f"automations.custom.{ctx.workspace_id}.{params['subject']}"
        payload = json.dumps(params.get("data")).encode()
        ack = await self._js.publish(
            subject,
            payload,
            headers={
                bus.MSG_ID: ctx.idempotency_key,
                "Autom-Run-Id": ctx.run_id,
                "Autom-Automation-Id": ctx.automation_id,
                "Autom-Step-Id": ctx.step_id,
            },
            timeout=5.0,
        )
        return {"subject": subject, "sequence": ack.seq, "duplicate": bool(ack.duplicate)}
