import datetime

from autom.api.scheduler.v1 import scheduler_pb2 as _scheduler_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListSchedulesRequest(_message.Message):
    __slots__ = ("automation_id", "enabled_only", "page_size", "page_token")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    enabled_only: bool
    page_size: int
    page_token: str
    def __init__(self, automation_id: _Optional[str] = ..., enabled_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[_scheduler_pb2.Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DescribeScheduleRequest(_message.Message):
    __slots__ = ("schedule_id", "next_count", "recent_count")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    next_count: int
    recent_count: int
    def __init__(self, schedule_id: _Optional[str] = ..., next_count: _Optional[int] = ..., recent_count: _Optional[int] = ...) -> None: ...

class DescribeScheduleResponse(_message.Message):
    __slots__ = ("schedule", "next_fire_times", "recent_fires")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIMES_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIRES_FIELD_NUMBER: _ClassVar[int]
    schedule: _scheduler_pb2.Schedule
    next_fire_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    recent_fires: _containers.RepeatedCompositeFieldContainer[_scheduler_pb2.Fire]
    def __init__(self, schedule: _Optional[_Union[_scheduler_pb2.Schedule, _Mapping]] = ..., next_fire_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., recent_fires: _Optional[_Iterable[_Union[_scheduler_pb2.Fire, _Mapping]]] = ...) -> None: ...

class PreviewScheduleRequest(_message.Message):
    __slots__ = ("cron", "timezone", "on_missing", "on_repeated", "count", "after")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ON_MISSING_FIELD_NUMBER: _ClassVar[int]
    ON_REPEATED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    on_missing: str
    on_repeated: str
    count: int
    after: _timestamp_pb2.Timestamp
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., on_missing: _Optional[str] = ..., on_repeated: _Optional[str] = ..., count: _Optional[int] = ..., after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreviewScheduleResponse(_message.Message):
    __slots__ = ("description", "next_fire_times")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_TIMES_FIELD_NUMBER: _ClassVar[int]
    description: str
    next_fire_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    def __init__(self, description: _Optional[str] = ..., next_fire_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ...) -> None: ...

class TriggerNowRequest(_message.Message):
    __slots__ = ("request_id", "schedule_id", "inputs")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schedule_id: str
    inputs: _struct_pb2.Struct
    def __init__(self, request_id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TriggerNowResponse(_message.Message):
    __slots__ = ("fire",)
    FIRE_FIELD_NUMBER: _ClassVar[int]
    fire: _scheduler_pb2.Fire
    def __init__(self, fire: _Optional[_Union[_scheduler_pb2.Fire, _Mapping]] = ...) -> None: ...

class BackfillRequest(_message.Message):
    __slots__ = ("request_id", "schedule_id", "start_time", "end_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schedule_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BackfillResponse(_message.Message):
    __slots__ = ("fires_created", "already_fired")
    FIRES_CREATED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_FIRED_FIELD_NUMBER: _ClassVar[int]
    fires_created: int
    already_fired: int
    def __init__(self, fires_created: _Optional[int] = ..., already_fired: _Optional[int] = ...) -> None: ...

class SyncAllRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncAllResponse(_message.Message):
    __slots__ = ("upserted", "removed")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    removed: int
    def __init__(self, upserted: _Optional[int] = ..., removed: _Optional[int] = ...) -> None: ...

class RemoveScheduleRequest(_message.Message):
    __slots__ = ("request_id", "schedule_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schedule_id: str
    def __init__(self, request_id: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class RemoveScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
