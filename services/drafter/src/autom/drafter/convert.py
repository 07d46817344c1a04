"""Proto <-> JSON form of definitions (with shape violations) and drafts -> protobuf."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor

from autom.api.common.v1 import definition_pb2
from autom.api.drafter.v1 import drafter_pb2
from autom.core.errors import Violation
from autom.core.protoconv import message_to_json, to_timestamp
from autom.drafter.domain.model import Draft, DraftStatus, Preview, Revision

STATUS_TO_PB = {
    DraftStatus.PENDING: drafter_pb2.DRAFT_STATUS_PENDING,
    DraftStatus.NEEDS_CLARIFICATION: drafter_pb2.DRAFT_STATUS_NEEDS_CLARIFICATION,
    DraftStatus.OUT_OF_SCOPE: drafter_pb2.DRAFT_STATUS_OUT_OF_SCOPE,
    DraftStatus.INVALID: drafter_pb2.DRAFT_STATUS_INVALID,
    DraftStatus.FAILED: drafter_pb2.DRAFT_STATUS_FAILED,
    DraftStatus.APPROVED: drafter_pb2.DRAFT_STATUS_APPROVED,
    DraftStatus.REJECTED: drafter_pb2.DRAFT_STATUS_REJECTED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}

_INT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _check_scalar(value: Any, fd: FieldDescriptor, path: str, out: list[Violation]) -> None:
    ok: bool
    want: str
    if fd.type == FieldDescriptor.TYPE_STRING:
        ok, want = isinstance(value, str), "a string"
    elif fd.type == FieldDescriptor.TYPE_BOOL:
        ok, want = isinstance(value, bool), "a boolean"
    elif fd.type in _INT_TYPES:
        ok = not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
        want = "an integer"
    elif fd.type in _FLOAT_TYPES:
        ok, want = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        out.append(Violation(path, f"must be {want}, not {_type_name(value)}"))


def _check_value(value: Any, fd: FieldDescriptor, path: str, out: list[Violation]) -> None:
    if fd.type != FieldDescriptor.TYPE_MESSAGE:
        _check_scalar(value, fd, path, out)
        return
    message_type: Any = fd.message_type
    full = message_type.full_name
    if full == "google.protobuf.Value":
        return
    if full == "google.protobuf.ListValue":
        if not isinstance(value, list):
            out.append(Violation(path, f"must be a list, not {_type_name(value)}"))
        return
    if full == "google.protobuf.Struct":
        if not isinstance(value, dict):
            out.append(Violation(path, f"must be an object, not {_type_name(value)}"))
        return
    _check_message(value, message_type, path, out)


def _check_message(value: Any, desc: Any, path: str, out: list[Violation]) -> None:
    if not isinstance(value, dict):
        out.append(Violation(path or "definition", f"must be an object, not {_type_name(value)}"))
        return
    fields = {f.name: f for f in desc.fields}
    fields.update({f.json_name: f for f in desc.fields})
    for key, item in value.items():
        sub = _join(path, str(key))
        fd = fields.get(key)
        if fd is None:
            out.append(Violation(sub, "unknown field"))
            continue
        if item is None:
            continue  # JSON null means "not set", as ParseDict reads it
        if fd.is_repeated:
            if not isinstance(item, list):
                out.append(Violation(sub, f"must be a list, not {_type_name(item)}"))
                continue
            for i, element in enumerate(item):
                _check_value(element, fd, f"{sub}[{i}]", out)
        else:
            _check_value(item, fd, sub, out)


def json_to_definition(
    raw: Any,
) -> tuple[definition_pb2.AutomationDefinition | None, list[Violation]]:
    """Model JSON -> proto; a wrong shape becomes field violations instead of an exception."""
    out: list[Violation] = []
    _check_message(raw, definition_pb2.AutomationDefinition.DESCRIPTOR, "", out)
    if out:
        return None, out
    try:
        return json_format.ParseDict(raw, definition_pb2.AutomationDefinition()), []
    except (json_format.ParseError, ValueError, TypeError) as exc:
        return None, [Violation("definition", str(exc).split("\n")[0][:300])]


def definition_to_json(pb: definition_pb2.AutomationDefinition) -> dict[str, Any]:
    """Proto -> the JSON form people write (snake_case, integral numbers as ints)."""
    return message_to_json(pb)


def definition_to_proto(raw: dict[str, Any]) -> definition_pb2.AutomationDefinition:
    """Stored JSON form (already shape-checked) -> proto."""
    return json_format.ParseDict(raw, definition_pb2.AutomationDefinition())


def _ts(dt: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt.astimezone(UTC))
    return out


def _preview_to_proto(preview: Preview) -> drafter_pb2.Preview:
    return drafter_pb2.Preview(
        triggers=[
            drafter_pb2.TriggerPreview(
                index=t.index,
                description=t.description,
                next_fire_times=[_ts(d) for d in t.next_fire_times],
            )
            for t in preview.triggers
        ],
        steps=[
            drafter_pb2.StepPreview(id=s.id, action=s.action, when=s.when) for s in preview.steps
        ],
        json=preview.json,
        changes=preview.changes,
        warnings=preview.warnings,
    )


def revision_to_proto(rev: Revision) -> drafter_pb2.Revision:
    """A stored revision -> proto."""
    out = drafter_pb2.Revision(
        number=rev.number,
        instruction=rev.instruction,
        status=STATUS_TO_PB[rev.status],
        violations=[
            definition_pb2.FieldViolation(field=v.field, description=v.description)
            for v in rev.violations
        ],
        questions=rev.questions,
        usage=drafter_pb2.Usage(
            prompt_tokens=rev.usage.prompt_tokens,
            completion_tokens=rev.usage.completion_tokens,
            cost_usd=rev.usage.cost_usd,
            calls=rev.usage.calls,
        ),
        create_time=to_timestamp(rev.created_at),
        message=rev.message,
    )
    if rev.definition is not None:
        pb, _ = json_to_definition(rev.definition)
        if pb is not None:
            out.definition.CopyFrom(pb)
    if rev.error_type:
        out.error.CopyFrom(drafter_pb2.DraftError(type=rev.error_type, message=rev.error_message))
    if rev.preview is not None:
        out.preview.CopyFrom(_preview_to_proto(rev.preview))
    return out


def draft_to_proto(draft: Draft) -> drafter_pb2.Draft:
    """A draft with its revisions -> proto."""
    return drafter_pb2.Draft(
        id=draft.id,
        workspace_id=draft.workspace_id,
        status=STATUS_TO_PB[draft.status],
        intent=draft.intent,
        timezone=draft.timezone,
        base_automation_id=draft.base_automation_id,
        base_version=draft.base_version,
        revisions=[revision_to_proto(r) for r in draft.revisions],
        automation_id=draft.automation_id,
        created_by=draft.created_by,
        create_time=to_timestamp(draft.created_at),
        update_time=to_timestamp(draft.updated_at),
        reject_reason=draft.reject_reason,
    )
