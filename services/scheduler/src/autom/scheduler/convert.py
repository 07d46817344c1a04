"""Protobuf <-> the scheduler's rows and domain values."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autom.api.definitions.v1 import definitions_pb2, definitions_service_pb2
from autom.api.events.v1 import events_pb2
from autom.api.scheduler.v1 import scheduler_pb2
from autom.core.protoconv import dict_to_struct, struct_to_dict, to_timestamp
from autom.schedule import ScheduleError, describe
from autom.scheduler.domain.config import ScheduleConfig, spec_for
from autom.scheduler.domain.model import AutomationChange, TriggerSpec

_EVENT_STATUS = {
    events_pb2.DEFINITION_EVENT_TYPE_PAUSED: "paused",
    events_pb2.DEFINITION_EVENT_TYPE_ARCHIVED: "archived",
}
_AUTOMATION_STATUS = {
    definitions_pb2.AUTOMATION_STATUS_ACTIVE: "active",
    definitions_pb2.AUTOMATION_STATUS_PAUSED: "paused",
    definitions_pb2.AUTOMATION_STATUS_ARCHIVED: "archived",
}
FIRE_KINDS = {
    "scheduled": scheduler_pb2.FIRE_KIND_SCHEDULED,
    "catchup": scheduler_pb2.FIRE_KIND_CATCHUP,
    "manual": scheduler_pb2.FIRE_KIND_MANUAL,
    "backfill": scheduler_pb2.FIRE_KIND_BACKFILL,
}


def _triggers(triggers: Any) -> tuple[TriggerSpec, ...]:
    return tuple(
        TriggerSpec(
            id=t.id,
            type=t.type,
            config=struct_to_dict(t.config),
            inputs=struct_to_dict(t.inputs),
        )
        for t in triggers
    )


def change_from_event(event: events_pb2.DefinitionEvent) -> AutomationChange:
    """A DefinitionEvent as a change to apply."""
    deleted = event.type == events_pb2.DEFINITION_EVENT_TYPE_DELETED
    status = "active" if event.active else _EVENT_STATUS.get(event.type, "paused")
    return AutomationChange(
        automation_id=event.automation_id,
        workspace_id=event.workspace_id,
        version=event.version,
        revision=event.revision,
        status="deleted" if deleted else status,
        deleted=deleted,
        created_by=event.created_by,
        triggers=() if deleted else _triggers(event.triggers),
    )


def change_from_listing(item: definitions_service_pb2.ScheduleTriggers) -> AutomationChange:
    """One automation of the definitions' StreamScheduleTriggers as a change to apply."""
    return AutomationChange(
        automation_id=item.automation_id,
        workspace_id=item.workspace_id,
        version=item.version,
        revision=item.revision,
        status=_AUTOMATION_STATUS.get(item.status, "paused"),
        deleted=False,
        created_by=item.created_by,
        triggers=_triggers(item.triggers),
    )


def duration_text(seconds: float) -> str:
    """Seconds as the shortest duration string parse_duration reads back."""
    total_ms = round(seconds * 1000)
    if total_ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms >= size:
            out.append(f"{total_ms // size}{unit}")
            total_ms %= size
    if total_ms:
        out.append(f"{total_ms}ms")
    return "".join(out)


def config_from_row(row: Any) -> ScheduleConfig:
    """The ScheduleConfig stored in a schedules row."""
    return ScheduleConfig(
        cron=row.cron,
        timezone=row.timezone,
        on_missing=row.on_missing,
        on_repeated=row.on_repeated,
        catchup=row.catchup,
        catchup_window=timedelta(seconds=row.catchup_window_s),
        jitter=timedelta(seconds=row.jitter_s),
        start_at=row.start_at,
        end_at=row.end_at,
        max_fires=row.max_fires,
    )


def _describe(row: Any) -> str:
    try:
        return describe(spec_for(row.cron, row.timezone, row.on_missing, row.on_repeated))
    except ScheduleError:
        return ""


def schedule_to_proto(row: Any) -> scheduler_pb2.Schedule:
    """A schedules row -> Schedule."""
    return scheduler_pb2.Schedule(
        id=row.id,
        workspace_id=row.workspace_id,
        automation_id=row.automation_id,
        automation_version=row.automation_version,
        trigger_id=row.trigger_id,
        cron=row.cron,
        timezone=row.timezone,
        on_missing=row.on_missing,
        on_repeated=row.on_repeated,
        catchup=row.catchup,
        catchup_window=duration_text(row.catchup_window_s),
        jitter=duration_text(row.jitter_s),
        enabled=bool(row.enabled and row.next_fire_at is not None),
        next_fire_time=to_timestamp(row.next_fire_at) if row.enabled else None,
        last_fire_time=to_timestamp(row.last_fired_at),
        start_time=to_timestamp(row.start_at),
        end_time=to_timestamp(row.end_at),
        max_fires=row.max_fires or 0,
        fired_count=row.fired_count,
        missed_count=row.missed_count,
        skipped_count=row.skipped_count,
        description=_describe(row),
        inputs=dict_to_struct(row.inputs),
    )


def fire_to_proto(row: Any) -> scheduler_pb2.Fire:
    """A fires row -> Fire."""
    return scheduler_pb2.Fire(
        fire_id=row.fire_id,
        schedule_id=row.schedule_id,
        scheduled_for=to_timestamp(row.scheduled_for),
        fired_time=to_timestamp(row.fired_at),
        published_time=to_timestamp(row.published_at),
        kind=FIRE_KINDS.get(row.kind, scheduler_pb2.FIRE_KIND_UNSPECIFIED),
        run_id=row.run_id or "",
        run_status=row.run_status or "",
    )
