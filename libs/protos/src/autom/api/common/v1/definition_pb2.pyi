from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AutomationDefinition(_message.Message):
    __slots__ = ("name", "description", "goal", "triggers", "inputs", "plan", "execution", "metadata")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    goal: str
    triggers: _containers.RepeatedCompositeFieldContainer[Trigger]
    inputs: InputsSpec
    plan: _containers.RepeatedCompositeFieldContainer[Step]
    execution: ExecutionPolicy
    metadata: Metadata
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., goal: _Optional[str] = ..., triggers: _Optional[_Iterable[_Union[Trigger, _Mapping]]] = ..., inputs: _Optional[_Union[InputsSpec, _Mapping]] = ..., plan: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., execution: _Optional[_Union[ExecutionPolicy, _Mapping]] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("id", "type", "config", "inputs")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    config: _struct_pb2.Struct
    inputs: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class InputsSpec(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: _struct_pb2.Struct
    def __init__(self, schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("id", "action", "params", "when", "retry", "timeout", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: str
    params: _struct_pb2.Struct
    when: str
    retry: RetryPolicy
    timeout: str
    description: str
    def __init__(self, id: _Optional[str] = ..., action: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., when: _Optional[str] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., timeout: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "backoff", "initial_delay", "max_delay", "jitter")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    INITIAL_DELAY_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    backoff: str
    initial_delay: str
    max_delay: str
    jitter: bool
    def __init__(self, max_retries: _Optional[int] = ..., backoff: _Optional[str] = ..., initial_delay: _Optional[str] = ..., max_delay: _Optional[str] = ..., jitter: _Optional[bool] = ...) -> None: ...

class ExecutionPolicy(_message.Message):
    __slots__ = ("timeout", "step_timeout", "retry", "concurrency", "budget_usd", "on_failure")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    timeout: str
    step_timeout: str
    retry: RetryPolicy
    concurrency: str
    budget_usd: float
    on_failure: _containers.RepeatedCompositeFieldContainer[Step]
    def __init__(self, timeout: _Optional[str] = ..., step_timeout: _Optional[str] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., concurrency: _Optional[str] = ..., budget_usd: _Optional[float] = ..., on_failure: _Optional[_Iterable[_Union[Step, _Mapping]]] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("tags", "created_from_nl", "draft_id", "extras")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_NL_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRAS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_from_nl: bool
    draft_id: str
    extras: _struct_pb2.Struct
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., created_from_nl: _Optional[bool] = ..., draft_id: _Optional[str] = ..., extras: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...
