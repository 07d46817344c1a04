import datetime

from autom.api.common.v1 import definition_pb2 as _definition_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DefinitionEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEFINITION_EVENT_TYPE_UNSPECIFIED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_CREATED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_UPDATED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_PAUSED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_RESUMED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_ARCHIVED: _ClassVar[DefinitionEventType]
    DEFINITION_EVENT_TYPE_DELETED: _ClassVar[DefinitionEventType]

class RunEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_EVENT_TYPE_UNSPECIFIED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STARTED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_STEP_FINISHED: _ClassVar[RunEventType]
    RUN_EVENT_TYPE_FINISHED: _ClassVar[RunEventType]
DEFINITION_EVENT_TYPE_UNSPECIFIED: DefinitionEventType
DEFINITION_EVENT_TYPE_CREATED: DefinitionEventType
DEFINITION_EVENT_TYPE_UPDATED: DefinitionEventType
DEFINITION_EVENT_TYPE_PAUSED: DefinitionEventType
DEFINITION_EVENT_TYPE_RESUMED: DefinitionEventType
DEFINITION_EVENT_TYPE_ARCHIVED: DefinitionEventType
DEFINITION_EVENT_TYPE_DELETED: DefinitionEventType
RUN_EVENT_TYPE_UNSPECIFIED: RunEventType
RUN_EVENT_TYPE_STARTED: RunEventType
RUN_EVENT_TYPE_STEP_FINISHED: RunEventType
RUN_EVENT_TYPE_FINISHED: RunEventType

class DefinitionEvent(_message.Message):
    __slots__ = ("event_id", "type", "workspace_id", "automation_id", "version", "active", "triggers", "created_by", "occur_time", "name", "revision")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: DefinitionEventType
    workspace_id: str
    automation_id: str
    version: int
    active: bool
    triggers: _containers.RepeatedCompositeFieldContainer[_definition_pb2.Trigger]
    created_by: str
    occur_time: _timestamp_pb2.Timestamp
    name: str
    revision: int
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[_Union[DefinitionEventType, str]] = ..., workspace_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., version: _Optional[int] = ..., active: _Optional[bool] = ..., triggers: _Optional[_Iterable[_Union[_definition_pb2.Trigger, _Mapping]]] = ..., created_by: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class FireEvent(_message.Message):
    __slots__ = ("fire_id", "workspace_id", "automation_id", "automation_version", "trigger_id", "trigger_type", "scheduled_for", "fired_time", "last_fired_time", "inputs", "principal", "retry_of_run_id", "resume_from_step")
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    FIRED_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRED_TIME_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    fire_id: str
    workspace_id: str
    automation_id: str
    automation_version: int
    trigger_id: str
    trigger_type: str
    scheduled_for: _timestamp_pb2.Timestamp
    fired_time: _timestamp_pb2.Timestamp
    last_fired_time: _timestamp_pb2.Timestamp
    inputs: _struct_pb2.Struct
    principal: str
    retry_of_run_id: str
    resume_from_step: str
    def __init__(self, fire_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., automation_version: _Optional[int] = ..., trigger_id: _Optional[str] = ..., trigger_type: _Optional[str] = ..., scheduled_for: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fired_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_fired_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., principal: _Optional[str] = ..., retry_of_run_id: _Optional[str] = ..., resume_from_step: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("event_id", "type", "run_id", "fire_id", "workspace_id", "automation_id", "status", "step_id", "step_status", "occur_time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_STATUS_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: RunEventType
    run_id: str
    fire_id: str
    workspace_id: str
    automation_id: str
    status: str
    step_id: str
    step_status: str
    occur_time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[_Union[RunEventType, str]] = ..., run_id: _Optional[str] = ..., fire_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., status: _Optional[str] = ..., step_id: _Optional[str] = ..., step_status: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TokenRevokedEvent(_message.Message):
    __slots__ = ("token_id", "workspace_id", "revoke_time", "expire_time")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    workspace_id: str
    revoke_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberChangedEvent(_message.Message):
    __slots__ = ("workspace_id", "principal", "role", "change_time")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    principal: str
    role: str
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[str] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
