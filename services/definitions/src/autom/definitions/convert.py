"""Proto <-> JSON form of the definition and the Automation resources."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from google.protobuf import json_format

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_pb2, definitions_service_pb2
from autom.core.protoconv import message_to_json, to_timestamp

STATUS_TO_PB: dict[str, Any] = {
    "active": definitions_pb2.AUTOMATION_STATUS_ACTIVE,
    "paused": definitions_pb2.AUTOMATION_STATUS_PAUSED,
    "archived": definitions_pb2.AUTOMATION_STATUS_ARCHIVED,
}
STATUS_FROM_PB: dict[int, str] = {v: k for k, v in STATUS_TO_PB.items()}
ROLE_TO_PB: dict[str, Any] = {
    "owner": definitions_pb2.ROLE_OWNER,
    "editor": definitions_pb2.ROLE_EDITOR,
    "viewer": definitions_pb2.ROLE_VIEWER,
}
ROLE_FROM_PB: dict[int, str] = {v: k for k, v in ROLE_TO_PB.items()}


def definition_to_json(pb: definition_pb2.AutomationDefinition) -> dict[str, Any]:
    """Proto -> the JSON form people write (snake_case, integral numbers as ints)."""
    return message_to_json(pb)


def definition_to_proto(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    """JSON form -> proto."""
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


def triggers_to_proto(raw: dict[str, Any]) -> list[definition_pb2.Trigger]:
    """The triggers of a definition in JSON form, as protos (its plan left unparsed)."""
    only = {"triggers": raw.get("triggers") or []}
    return list(json_format.ParseDict(only, definition_pb2.AutomationDefinition()).triggers)


# Protos of stored versions' definitions: a version never changes, so parsing it once does.
_VERSIONS: OrderedDict[tuple[str, int], definition_pb2.AutomationDefinition] = OrderedDict()
VERSIONS_KEPT = 1024


def version_definition(
    automation_id: str, version: int, raw: dict[str, Any]
) -> definition_pb2.AutomationDefinition:
    """The proto of a stored version's definition (shared: copy it, never change it)."""
    key = (automation_id, version)
    found = _VERSIONS.get(key)
    if found is None:
        found = _VERSIONS[key] = definition_to_proto(raw)
        if len(_VERSIONS) > VERSIONS_KEPT:
            _VERSIONS.popitem(last=False)
    else:
        _VERSIONS.move_to_end(key)
    return found


def automation_to_proto(
    row: Any, definition: dict[str, Any] | None = None, *, version: int = 0
) -> definitions_pb2.Automation:
    """A row of `automations` -> proto; with `definition`, at that stored `version`'s."""
    stored = (
        version_definition(row.id, row.version, row.definition)
        if definition is None
        else version_definition(row.id, version, definition)
    )
    return definitions_pb2.Automation(
        id=row.id,
        workspace_id=row.workspace_id,
        name=row.name,
        status=STATUS_TO_PB[row.status],
        version=row.version,
        # The constructor copies it: the kept proto stays as stored.
        definition=stored,
        pause_note=row.pause_note,
        created_by=row.created_by,
        create_time=to_timestamp(row.created_at),
        update_time=to_timestamp(row.updated_at),
        revision=row.revision,
    )


def schedule_triggers_to_proto(item: Any) -> definitions_service_pb2.ScheduleTriggers:
    """A ScheduleTriggers view -> proto."""
    return definitions_service_pb2.ScheduleTriggers(
        automation_id=item.automation_id,
        workspace_id=item.workspace_id,
        name=item.name,
        status=STATUS_TO_PB[item.status],
        version=item.version,
        revision=item.revision,
        created_by=item.created_by,
        triggers=[
            json_format.ParseDict(t, definition_pb2.Trigger(), ignore_unknown_fields=True)
            for t in item.triggers
        ],
    )


def version_to_proto(row: Any) -> definitions_pb2.AutomationVersion:
    """A row of `automation_versions` -> proto."""
    return definitions_pb2.AutomationVersion(
        automation_id=row.automation_id,
        version=row.version,
        definition=definition_to_proto(row.definition),
        created_by=row.created_by,
        create_time=to_timestamp(row.created_at),
    )


def ts(dt: datetime | None) -> Any:
    """Timestamp or None, for optional fields."""
    return to_timestamp(dt)
