import datetime

from autom.api.common.v1 import definition_pb2 as _definition_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DraftStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRAFT_STATUS_UNSPECIFIED: _ClassVar[DraftStatus]
    DRAFT_STATUS_PENDING: _ClassVar[DraftStatus]
    DRAFT_STATUS_NEEDS_CLARIFICATION: _ClassVar[DraftStatus]
    DRAFT_STATUS_OUT_OF_SCOPE: _ClassVar[DraftStatus]
    DRAFT_STATUS_INVALID: _ClassVar[DraftStatus]
    DRAFT_STATUS_FAILED: _ClassVar[DraftStatus]
    DRAFT_STATUS_APPROVED: _ClassVar[DraftStatus]
    DRAFT_STATUS_REJECTED: _ClassVar[DraftStatus]
DRAFT_STATUS_UNSPECIFIED: DraftStatus
DRAFT_STATUS_PENDING: DraftStatus
DRAFT_STATUS_NEEDS_CLARIFICATION: DraftStatus
DRAFT_STATUS_OUT_OF_SCOPE: DraftStatus
DRAFT_STATUS_INVALID: DraftStatus
DRAFT_STATUS_FAILED: DraftStatus
DRAFT_STATUS_APPROVED: DraftStatus
DRAFT_STATUS_REJECTED: DraftStatus

class DraftError(_message.Message):
    __slots__ = ("type", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "cost_usd", "calls")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    calls: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., calls: _Optional[int] = ...) -> None: ...

class TriggerPreview(_message.Message):
    __slots__ = ("index", "description", "next_fire_times")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIMES_FIELD_NUMBER: _ClassVar[int]
    index: int
    description: str
    next_fire_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    def __init__(self, index: _Optional[int] = ..., description: _Optional[str] = ..., next_fire_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ...) -> None: ...

class StepPreview(_message.Message):
    __slots__ = ("id", "action", "when")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: str
    when: str
    def __init__(self, id: _Optional[str] = ..., action: _Optional[str] = ..., when: _Optional[str] = ...) -> None: ...

class Preview(_message.Message):
    __slots__ = ("triggers", "steps", "json", "changes", "warnings")
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    triggers: _containers.RepeatedCompositeFieldContainer[TriggerPreview]
    steps: _containers.RepeatedCompositeFieldContainer[StepPreview]
    json: str
    changes: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, triggers: _Optional[_Iterable[_Union[TriggerPreview, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[StepPreview, _Mapping]]] = ..., json: _Optional[str] = ..., changes: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("number", "instruction", "status", "definition", "violations", "questions", "error", "usage", "preview", "create_time", "message")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    number: int
    instruction: str
    status: DraftStatus
    definition: _definition_pb2.AutomationDefinition
    violations: _containers.RepeatedCompositeFieldContainer[_definition_pb2.FieldViolation]
    questions: _containers.RepeatedScalarFieldContainer[str]
    error: DraftError
    usage: Usage
    preview: Preview
    create_time: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, number: _Optional[int] = ..., instruction: _Optional[str] = ..., status: _Optional[_Union[DraftStatus, str]] = ..., definition: _Optional[_Union[_definition_pb2.AutomationDefinition, _Mapping]] = ..., violations: _Optional[_Iterable[_Union[_definition_pb2.FieldViolation, _Mapping]]] = ..., questions: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[DraftError, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., preview: _Optional[_Union[Preview, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class Draft(_message.Message):
    __slots__ = ("id", "workspace_id", "status", "intent", "timezone", "base_automation_id", "base_version", "revisions", "automation_id", "created_by", "create_time", "update_time", "reject_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    BASE_AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace_id: str
    status: DraftStatus
    intent: str
    timezone: str
    base_automation_id: str
    base_version: int
    revisions: _containers.RepeatedCompositeFieldContainer[Revision]
    automation_id: str
    created_by: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    reject_reason: str
    def __init__(self, id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., status: _Optional[_Union[DraftStatus, str]] = ..., intent: _Optional[str] = ..., timezone: _Optional[str] = ..., base_automation_id: _Optional[str] = ..., base_version: _Optional[int] = ..., revisions: _Optional[_Iterable[_Union[Revision, _Mapping]]] = ..., automation_id: _Optional[str] = ..., created_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reject_reason: _Optional[str] = ...) -> None: ...
