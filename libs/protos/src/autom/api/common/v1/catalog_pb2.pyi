from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionType(_message.Message):
    __slots__ = ("type", "description", "params_schema", "output_schema", "side_effects")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SIDE_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    type: str
    description: str
    params_schema: _struct_pb2.Struct
    output_schema: _struct_pb2.Struct
    side_effects: bool
    def __init__(self, type: _Optional[str] = ..., description: _Optional[str] = ..., params_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., side_effects: _Optional[bool] = ...) -> None: ...

class TriggerType(_message.Message):
    __slots__ = ("type", "description", "config_schema", "payload_schema")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    type: str
    description: str
    config_schema: _struct_pb2.Struct
    payload_schema: _struct_pb2.Struct
    def __init__(self, type: _Optional[str] = ..., description: _Optional[str] = ..., config_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., payload_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Capability(_message.Message):
    __slots__ = ("id", "description", "input_schema", "output_schema")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    input_schema: _struct_pb2.Struct
    output_schema: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., input_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Catalog(_message.Message):
    __slots__ = ("actions", "triggers", "capabilities")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[ActionType]
    triggers: _containers.RepeatedCompositeFieldContainer[TriggerType]
    capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    def __init__(self, actions: _Optional[_Iterable[_Union[ActionType, _Mapping]]] = ..., triggers: _Optional[_Iterable[_Union[TriggerType, _Mapping]]] = ..., capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ...) -> None: ...
