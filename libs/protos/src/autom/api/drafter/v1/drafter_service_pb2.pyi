from autom.api.common.v1 import definition_pb2 as _definition_pb2
from autom.api.drafter.v1 import drafter_pb2 as _drafter_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DraftAutomationRequest(_message.Message):
    __slots__ = ("request_id", "intent", "timezone", "automation_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    intent: str
    timezone: str
    automation_id: str
    def __init__(self, request_id: _Optional[str] = ..., intent: _Optional[str] = ..., timezone: _Optional[str] = ..., automation_id: _Optional[str] = ...) -> None: ...

class DraftAutomationResponse(_message.Message):
    __slots__ = ("draft",)
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    draft: _drafter_pb2.Draft
    def __init__(self, draft: _Optional[_Union[_drafter_pb2.Draft, _Mapping]] = ...) -> None: ...

class RefineDraftRequest(_message.Message):
    __slots__ = ("request_id", "draft_id", "instruction")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    draft_id: str
    instruction: str
    def __init__(self, request_id: _Optional[str] = ..., draft_id: _Optional[str] = ..., instruction: _Optional[str] = ...) -> None: ...

class RefineDraftResponse(_message.Message):
    __slots__ = ("draft",)
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    draft: _drafter_pb2.Draft
    def __init__(self, draft: _Optional[_Union[_drafter_pb2.Draft, _Mapping]] = ...) -> None: ...

class GetDraftRequest(_message.Message):
    __slots__ = ("draft_id",)
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    def __init__(self, draft_id: _Optional[str] = ...) -> None: ...

class GetDraftResponse(_message.Message):
    __slots__ = ("draft",)
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    draft: _drafter_pb2.Draft
    def __init__(self, draft: _Optional[_Union[_drafter_pb2.Draft, _Mapping]] = ...) -> None: ...

class ListDraftsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: _drafter_pb2.DraftStatus
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[_drafter_pb2.DraftStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDraftsResponse(_message.Message):
    __slots__ = ("drafts", "next_page_token")
    DRAFTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drafts: _containers.RepeatedCompositeFieldContainer[_drafter_pb2.Draft]
    next_page_token: str
    def __init__(self, drafts: _Optional[_Iterable[_Union[_drafter_pb2.Draft, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveDraftRequest(_message.Message):
    __slots__ = ("request_id", "draft_id", "expected_revision", "definition")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    draft_id: str
    expected_revision: int
    definition: _definition_pb2.AutomationDefinition
    def __init__(self, request_id: _Optional[str] = ..., draft_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., definition: _Optional[_Union[_definition_pb2.AutomationDefinition, _Mapping]] = ...) -> None: ...

class ApproveDraftResponse(_message.Message):
    __slots__ = ("draft", "automation_id", "automation_version")
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    draft: _drafter_pb2.Draft
    automation_id: str
    automation_version: int
    def __init__(self, draft: _Optional[_Union[_drafter_pb2.Draft, _Mapping]] = ..., automation_id: _Optional[str] = ..., automation_version: _Optional[int] = ...) -> None: ...

class RejectDraftRequest(_message.Message):
    __slots__ = ("request_id", "draft_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    draft_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., draft_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectDraftResponse(_message.Message):
    __slots__ = ("draft",)
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    draft: _drafter_pb2.Draft
    def __init__(self, draft: _Optional[_Union[_drafter_pb2.Draft, _Mapping]] = ...) -> None: ...
