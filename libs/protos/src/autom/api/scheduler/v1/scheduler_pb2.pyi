import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FireKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIRE_KIND_UNSPECIFIED: _ClassVar[FireKind]
    FIRE_KIND_SCHEDULED: _ClassVar[FireKind]
    FIRE_KIND_CATCHUP: _ClassVar[FireKind]
    FIRE_KIND_MANUAL: _ClassVar[FireKind]
    FIRE_KIND_BACKFILL: _ClassVar[FireKind]
FIRE_KIND_UNSPECIFIED: FireKind
FIRE_KIND_SCHEDULED: FireKind
FIRE_KIND_CATCHUP: FireKind
FIRE_KIND_MANUAL: FireKind
FIRE_KIND_BACKFILL: FireKind

class Schedule(_message.Message):
    __slots__ = ("id", "workspace_id", "automation_id", "automation_version", "trigger_id", "cron", "timezone", "on_missing", "on_repeated", "catchup", "catchup_window", "jitter", "enabled", "next_fire_time", "last_fire_time", "start_time", "end_time", "max_fires", "fired_count", "missed_count", "skipped_count", "description", "inputs")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ON_MISSING_FIELD_NUMBER: _ClassVar[int]
    ON_REPEATED_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_FIRES_FIELD_NUMBER: _ClassVar[int]
    FIRED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace_id: str
    automation_id: str
    automation_version: int
    trigger_id: str
    cron: str
    timezone: str
    on_missing: str
    on_repeated: str
    catchup: str
    catchup_window: str
    jitter: str
    enabled: bool
    next_fire_time: _timestamp_pb2.Timestamp
    last_fire_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    max_fires: int
    fired_count: int
    missed_count: int
    skipped_count: int
    description: str
    inputs: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., automation_version: _Optional[int] = ..., trigger_id: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., on_missing: _Optional[str] = ..., on_repeated: _Optional[str] = ..., catchup: _Optional[str] = ..., catchup_window: _Optional[str] = ..., jitter: _Optional[str] = ..., enabled: _Optional[bool] = ..., next_fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_fire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_fires: _Optional[int] = ..., fired_count: _Optional[int] = ..., missed_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., description: _Optional[str] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Fire(_message.Message):
    __slots__ = ("fire_id", "schedule_id", "scheduled_for", "fired_time", "published_time", "kind", "run_id", "run_status")
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FOR_FIELD_NUMBER: _ClassVar[int]
    FIRED_TIME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    fire_id: str
    schedule_id: str
    scheduled_for: _timestamp_pb2.Timestamp
    fired_time: _timestamp_pb2.Timestamp
    published_time: _timestamp_pb2.Timestamp
    kind: FireKind
    run_id: str
    run_status: str
    def __init__(self, fire_id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., scheduled_for: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fired_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[FireKind, str]] = ..., run_id: _Optional[str] = ..., run_status: _Optional[str] = ...) -> None: ...
