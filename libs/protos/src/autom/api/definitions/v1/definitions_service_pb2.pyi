import datetime

from autom.api.common.v1 import catalog_pb2 as _catalog_pb2
from autom.api.common.v1 import definition_pb2 as _definition_pb2
from autom.api.definitions.v1 import audit_pb2 as _audit_pb2
from autom.api.definitions.v1 import definitions_pb2 as _definitions_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValidateDefinitionRequest(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: _definition_pb2.AutomationDefinition
    def __init__(self, definition: _Optional[_Union[_definition_pb2.AutomationDefinition, _Mapping]] = ...) -> None: ...

class ValidateDefinitionResponse(_message.Message):
    __slots__ = ("valid", "violations")
    VALID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    violations: _containers.RepeatedCompositeFieldContainer[_definition_pb2.FieldViolation]
    def __init__(self, valid: _Optional[bool] = ..., violations: _Optional[_Iterable[_Union[_definition_pb2.FieldViolation, _Mapping]]] = ...) -> None: ...

class CreateAutomationRequest(_message.Message):
    __slots__ = ("request_id", "definition", "paused")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    definition: _definition_pb2.AutomationDefinition
    paused: bool
    def __init__(self, request_id: _Optional[str] = ..., definition: _Optional[_Union[_definition_pb2.AutomationDefinition, _Mapping]] = ..., paused: _Optional[bool] = ...) -> None: ...

class CreateAutomationResponse(_message.Message):
    __slots__ = ("automation", "webhooks")
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ..., webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ...) -> None: ...

class GetAutomationRequest(_message.Message):
    __slots__ = ("automation_id", "version", "workspace_id")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    version: int
    workspace_id: str
    def __init__(self, automation_id: _Optional[str] = ..., version: _Optional[int] = ..., workspace_id: _Optional[str] = ...) -> None: ...

class GetAutomationResponse(_message.Message):
    __slots__ = ("automation", "webhooks")
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ..., webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ...) -> None: ...

class ListAutomationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "tag", "name_prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _definitions_pb2.AutomationStatus
    tag: str
    name_prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_definitions_pb2.AutomationStatus, str]] = ..., tag: _Optional[str] = ..., name_prefix: _Optional[str] = ...) -> None: ...

class ListAutomationsResponse(_message.Message):
    __slots__ = ("automations", "next_page_token")
    AUTOMATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    automations: _containers.RepeatedCompositeFieldContainer[_definitions_pb2.Automation]
    next_page_token: str
    def __init__(self, automations: _Optional[_Iterable[_Union[_definitions_pb2.Automation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateAutomationRequest(_message.Message):
    __slots__ = ("request_id", "automation_id", "version", "definition")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    automation_id: str
    version: int
    definition: _definition_pb2.AutomationDefinition
    def __init__(self, request_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., version: _Optional[int] = ..., definition: _Optional[_Union[_definition_pb2.AutomationDefinition, _Mapping]] = ...) -> None: ...

class UpdateAutomationResponse(_message.Message):
    __slots__ = ("automation", "webhooks")
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ..., webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ...) -> None: ...

class ListAutomationVersionsRequest(_message.Message):
    __slots__ = ("automation_id", "page_size", "page_token")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    page_size: int
    page_token: str
    def __init__(self, automation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAutomationVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_definitions_pb2.AutomationVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[_definitions_pb2.AutomationVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PauseAutomationRequest(_message.Message):
    __slots__ = ("request_id", "automation_id", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    automation_id: str
    note: str
    def __init__(self, request_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class PauseAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ...) -> None: ...

class ResumeAutomationRequest(_message.Message):
    __slots__ = ("request_id", "automation_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    automation_id: str
    def __init__(self, request_id: _Optional[str] = ..., automation_id: _Optional[str] = ...) -> None: ...

class ResumeAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ...) -> None: ...

class ArchiveAutomationRequest(_message.Message):
    __slots__ = ("request_id", "automation_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    automation_id: str
    def __init__(self, request_id: _Optional[str] = ..., automation_id: _Optional[str] = ...) -> None: ...

class ArchiveAutomationResponse(_message.Message):
    __slots__ = ("automation",)
    AUTOMATION_FIELD_NUMBER: _ClassVar[int]
    automation: _definitions_pb2.Automation
    def __init__(self, automation: _Optional[_Union[_definitions_pb2.Automation, _Mapping]] = ...) -> None: ...

class DeleteAutomationRequest(_message.Message):
    __slots__ = ("request_id", "automation_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    automation_id: str
    def __init__(self, request_id: _Optional[str] = ..., automation_id: _Optional[str] = ...) -> None: ...

class DeleteAutomationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDefinitionSchemaRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDefinitionSchemaResponse(_message.Message):
    __slots__ = ("json_schema", "catalog")
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CATALOG_FIELD_NUMBER: _ClassVar[int]
    json_schema: _struct_pb2.Struct
    catalog: _catalog_pb2.Catalog
    def __init__(self, json_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., catalog: _Optional[_Union[_catalog_pb2.Catalog, _Mapping]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("principal", "workspace_id", "role", "token_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    principal: str
    workspace_id: str
    role: _definitions_pb2.Role
    token_id: str
    def __init__(self, principal: _Optional[str] = ..., workspace_id: _Optional[str] = ..., role: _Optional[_Union[_definitions_pb2.Role, str]] = ..., token_id: _Optional[str] = ...) -> None: ...

class CreateWorkspaceRequest(_message.Message):
    __slots__ = ("request_id", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateWorkspaceResponse(_message.Message):
    __slots__ = ("workspace", "owner_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OWNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: _definitions_pb2.Workspace
    owner_token: str
    def __init__(self, workspace: _Optional[_Union[_definitions_pb2.Workspace, _Mapping]] = ..., owner_token: _Optional[str] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_definitions_pb2.Member]
    def __init__(self, members: _Optional[_Iterable[_Union[_definitions_pb2.Member, _Mapping]]] = ...) -> None: ...

class SetMemberRequest(_message.Message):
    __slots__ = ("request_id", "principal", "role")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    principal: str
    role: _definitions_pb2.Role
    def __init__(self, request_id: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[_Union[_definitions_pb2.Role, str]] = ...) -> None: ...

class SetMemberResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: _definitions_pb2.Member
    def __init__(self, member: _Optional[_Union[_definitions_pb2.Member, _Mapping]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("request_id", "principal")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    principal: str
    def __init__(self, request_id: _Optional[str] = ..., principal: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateApiTokenRequest(_message.Message):
    __slots__ = ("request_id", "principal", "role", "name", "ttl_seconds")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    principal: str
    role: _definitions_pb2.Role
    name: str
    ttl_seconds: int
    def __init__(self, request_id: _Optional[str] = ..., principal: _Optional[str] = ..., role: _Optional[_Union[_definitions_pb2.Role, str]] = ..., name: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class CreateApiTokenResponse(_message.Message):
    __slots__ = ("token", "secret")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    token: _definitions_pb2.ApiToken
    secret: str
    def __init__(self, token: _Optional[_Union[_definitions_pb2.ApiToken, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListApiTokensRequest(_message.Message):
    __slots__ = ("include_inactive",)
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    include_inactive: bool
    def __init__(self, include_inactive: _Optional[bool] = ...) -> None: ...

class ListApiTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_definitions_pb2.ApiToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_definitions_pb2.ApiToken, _Mapping]]] = ...) -> None: ...

class RevokeApiTokenRequest(_message.Message):
    __slots__ = ("request_id", "token_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    token_id: str
    def __init__(self, request_id: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

class RevokeApiTokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: _definitions_pb2.ApiToken
    def __init__(self, token: _Optional[_Union[_definitions_pb2.ApiToken, _Mapping]] = ...) -> None: ...

class SetSecretRequest(_message.Message):
    __slots__ = ("request_id", "name", "value")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    value: str
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _definitions_pb2.SecretInfo
    def __init__(self, secret: _Optional[_Union[_definitions_pb2.SecretInfo, _Mapping]] = ...) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[_definitions_pb2.SecretInfo]
    def __init__(self, secrets: _Optional[_Iterable[_Union[_definitions_pb2.SecretInfo, _Mapping]]] = ...) -> None: ...

class DeleteSecretRequest(_message.Message):
    __slots__ = ("request_id", "name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    name: str
    def __init__(self, request_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResolveSecretsRequest(_message.Message):
    __slots__ = ("workspace_id", "names", "run_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ...) -> None: ...

class ResolveSecretsResponse(_message.Message):
    __slots__ = ("values", "missing")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamScheduleTriggersRequest(_message.Message):
    __slots__ = ("chunk_size",)
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk_size: int
    def __init__(self, chunk_size: _Optional[int] = ...) -> None: ...

class ScheduleTriggers(_message.Message):
    __slots__ = ("automation_id", "workspace_id", "name", "status", "version", "revision", "created_by", "triggers")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    workspace_id: str
    name: str
    status: _definitions_pb2.AutomationStatus
    version: int
    revision: int
    created_by: str
    triggers: _containers.RepeatedCompositeFieldContainer[_definition_pb2.Trigger]
    def __init__(self, automation_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[_definitions_pb2.AutomationStatus, str]] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., created_by: _Optional[str] = ..., triggers: _Optional[_Iterable[_Union[_definition_pb2.Trigger, _Mapping]]] = ...) -> None: ...

class StreamScheduleTriggersResponse(_message.Message):
    __slots__ = ("automations",)
    AUTOMATIONS_FIELD_NUMBER: _ClassVar[int]
    automations: _containers.RepeatedCompositeFieldContainer[ScheduleTriggers]
    def __init__(self, automations: _Optional[_Iterable[_Union[ScheduleTriggers, _Mapping]]] = ...) -> None: ...

class IssueServiceTokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IssueServiceTokenResponse(_message.Message):
    __slots__ = ("token", "expire_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("trigger_id", "hook_id", "path")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    HOOK_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    hook_id: str
    path: str
    def __init__(self, trigger_id: _Optional[str] = ..., hook_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class RotateWebhookRequest(_message.Message):
    __slots__ = ("automation_id", "trigger_id")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    trigger_id: str
    def __init__(self, automation_id: _Optional[str] = ..., trigger_id: _Optional[str] = ...) -> None: ...

class RotateWebhookResponse(_message.Message):
    __slots__ = ("webhook",)
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ...) -> None: ...

class AuthenticateWebhookRequest(_message.Message):
    __slots__ = ("hook_id", "headers", "body")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOOK_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    hook_id: str
    headers: _containers.ScalarMap[str, str]
    body: bytes
    def __init__(self, hook_id: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ...) -> None: ...

class AuthenticateWebhookResponse(_message.Message):
    __slots__ = ("workspace_id", "automation_id", "version", "status", "trigger_id", "config", "delivery_id", "created_by")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    automation_id: str
    version: int
    status: _definitions_pb2.AutomationStatus
    trigger_id: str
    config: _struct_pb2.Struct
    delivery_id: str
    created_by: str
    def __init__(self, workspace_id: _Optional[str] = ..., automation_id: _Optional[str] = ..., version: _Optional[int] = ..., status: _Optional[_Union[_definitions_pb2.AutomationStatus, str]] = ..., trigger_id: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., delivery_id: _Optional[str] = ..., created_by: _Optional[str] = ...) -> None: ...

class MatchEventTriggersRequest(_message.Message):
    __slots__ = ("workspace_id", "subject", "source_automation_id", "source_status")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATUS_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    subject: str
    source_automation_id: str
    source_status: str
    def __init__(self, workspace_id: _Optional[str] = ..., subject: _Optional[str] = ..., source_automation_id: _Optional[str] = ..., source_status: _Optional[str] = ...) -> None: ...

class EventTriggerMatch(_message.Message):
    __slots__ = ("automation_id", "version", "trigger_id", "config", "created_by")
    AUTOMATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    automation_id: str
    version: int
    trigger_id: str
    config: _struct_pb2.Struct
    created_by: str
    def __init__(self, automation_id: _Optional[str] = ..., version: _Optional[int] = ..., trigger_id: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class MatchEventTriggersResponse(_message.Message):
    __slots__ = ("matches", "no_listeners")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    NO_LISTENERS_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[EventTriggerMatch]
    no_listeners: bool
    def __init__(self, matches: _Optional[_Iterable[_Union[EventTriggerMatch, _Mapping]]] = ..., no_listeners: _Optional[bool] = ...) -> None: ...

class SetWorkspaceQuotasRequest(_message.Message):
    __slots__ = ("workspace_id", "limits", "reset")
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    limits: _containers.ScalarMap[str, float]
    reset: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workspace_id: _Optional[str] = ..., limits: _Optional[_Mapping[str, float]] = ..., reset: _Optional[_Iterable[str]] = ...) -> None: ...

class SetWorkspaceQuotasResponse(_message.Message):
    __slots__ = ("limits",)
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.ScalarMap[str, float]
    def __init__(self, limits: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GetWorkspaceQuotasRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class GetWorkspaceQuotasResponse(_message.Message):
    __slots__ = ("limits", "active_automations", "workspace_id")
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_AUTOMATIONS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.ScalarMap[str, float]
    active_automations: int
    workspace_id: str
    def __init__(self, limits: _Optional[_Mapping[str, float]] = ..., active_automations: _Optional[int] = ..., workspace_id: _Optional[str] = ...) -> None: ...

class McpServerInfo(_message.Message):
    __slots__ = ("name", "url", "header_names", "tools", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADER_NAMES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    header_names: _containers.RepeatedScalarFieldContainer[str]
    tools: _containers.RepeatedCompositeFieldContainer[McpToolInfo]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., header_names: _Optional[_Iterable[str]] = ..., tools: _Optional[_Iterable[_Union[McpToolInfo, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class McpToolInfo(_message.Message):
    __slots__ = ("name", "description", "input_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RegisterMcpServerRequest(_message.Message):
    __slots__ = ("name", "url", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    headers: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterMcpServerResponse(_message.Message):
    __slots__ = ("server",)
    SERVER_FIELD_NUMBER: _ClassVar[int]
    server: McpServerInfo
    def __init__(self, server: _Optional[_Union[McpServerInfo, _Mapping]] = ...) -> None: ...

class ListMcpServersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMcpServersResponse(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[McpServerInfo]
    def __init__(self, servers: _Optional[_Iterable[_Union[McpServerInfo, _Mapping]]] = ...) -> None: ...

class DeleteMcpServerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteMcpServerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResolveMcpServersRequest(_message.Message):
    __slots__ = ("workspace_id", "names", "run_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ...) -> None: ...

class ResolvedMcpServer(_message.Message):
    __slots__ = ("name", "url", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    headers: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ResolveMcpServersResponse(_message.Message):
    __slots__ = ("servers", "missing")
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[ResolvedMcpServer]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, servers: _Optional[_Iterable[_Union[ResolvedMcpServer, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...
