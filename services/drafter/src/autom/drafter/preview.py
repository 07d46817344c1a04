"""Previews: trigger descriptions and next fire times (scheduler first, local fallback)."""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc

from autom.drafter.clients import SchedulePreview, SchedulerClient
from autom.drafter.domain.changes import describe_changes
from autom.drafter.domain.model import Preview, StepPreview, TriggerPreview
from autom.drafter.domain.risks import risk_warnings
from autom.schedule import ScheduleError, describe, parse_spec, preview

log = logging.getLogger(__name__)

FIRE_TIMES = 3


def local_schedule_preview(
    *, cron: str, timezone: str, on_missing: str, on_repeated: str, count: int
) -> SchedulePreview:
    """The same answer PreviewSchedule gives, computed with autom.schedule in-process."""
    spec = parse_spec(cron, timezone, on_missing=on_missing, on_repeated=on_repeated)
    return SchedulePreview(describe(spec), preview(spec, count))


def pretty_json(definition: dict[str, Any]) -> str:
    """The definition as the user reads it."""
    return json.dumps(definition, indent=2, ensure_ascii=False)


class PreviewBuilder:
    """Builds a pending draft's preview; the scheduler is asked first, as the caller."""

    def __init__(self, scheduler: SchedulerClient | None) -> None:
        self._scheduler = scheduler

    async def _schedule(self, token: str, config: dict[str, Any]) -> SchedulePreview:
        args = {
            "cron": str(config.get("cron", "")),
            "timezone": str(config.get("timezone") or "UTC"),
            "on_missing": str(config.get("on_missing") or "shift"),
            "on_repeated": str(config.get("on_repeated") or "first"),
            "count": FIRE_TIMES,
        }
        if self._scheduler is not None:
            try:
                return await self._scheduler.preview(token, **args)  # type: ignore[arg-type]
            except grpc.aio.AioRpcError as err:
                # The preview is best-effort: a missing or unreachable scheduler must not
                # block drafting, and autom.schedule gives the same answer.
                log.info("PreviewSchedule failed (%s); previewing locally", err.code().name)
        return local_schedule_preview(**args)  # type: ignore[arg-type]

    async def build(
        self,
        token: str,
        definition: dict[str, Any],
        *,
        base: dict[str, Any] | None = None,
        trigger_descriptions: dict[str, str] | None = None,
    ) -> Preview:
        """Triggers with descriptions and next fire times, steps, pretty JSON and changes."""
        triggers: list[TriggerPreview] = []
        for i, trigger in enumerate(definition.get("triggers") or []):
            ttype = str(trigger.get("type", ""))
            config = trigger.get("config") or {}
            if ttype == "schedule":
                try:
                    sp = await self._schedule(token, config)
                    triggers.append(TriggerPreview(i, sp.description, sp.next_fire_times))
                    continue
                except (ScheduleError, ValueError) as exc:
                    log.info("cannot preview trigger %d: %s", i, exc)
            described = (trigger_descriptions or {}).get(ttype, "")
            triggers.append(TriggerPreview(i, f"{ttype}: {described}" if described else ttype))
        steps = [
            StepPreview(str(s.get("id", "")), str(s.get("action", "")), str(s.get("when") or ""))
            for s in definition.get("plan") or []
            if isinstance(s, dict)
        ]
        changes = describe_changes(base, definition) if base is not None else []
        return Preview(
            triggers, steps, pretty_json(definition), changes, warnings=risk_warnings(definition)
        )
