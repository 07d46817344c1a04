"""DefinitionsService servicer: a thin adapter between protobuf and the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc

from autom.api.common.v1 import catalog_pb2, definition_pb2
from autom.api.definitions.v1 import audit_pb2, definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core.auth import (
    DEFAULT_SERVICE_TOKEN_TTL,
    Role,
    TokenSigner,
    current_principal,
)
from autom.core.errors import FailedPrecondition, PermissionDenied, ValidationFailed, Violation
from autom.core.mcptools import McpTool
from autom.core.protoconv import dict_to_struct, from_timestamp
from autom.core.registry import Catalog
from autom.definitions.access import AccessService
from autom.definitions.audit import AuditFilter, AuditLog, to_proto
from autom.definitions.convert import (
    ROLE_FROM_PB,
    ROLE_TO_PB,
    STATUS_FROM_PB,
    STATUS_TO_PB,
    automation_to_proto,
    definition_to_json,
    schedule_triggers_to_proto,
    ts,
    version_to_proto,
)
from autom.definitions.domain.model import definition_json_schema
from autom.definitions.mcp_servers import McpServers
from autom.definitions.quotas import Quotas
from autom.definitions.service import DefinitionsService
from autom.definitions.webhooks import Endpoint, WebhookService, match_event_triggers

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _definition(request: Any) -> dict[str, Any]:
    if not request.HasField("definition"):
        raise ValidationFailed([Violation("definition", "required")])
    definition: definition_pb2.AutomationDefinition = request.definition
    return definition_to_json(definition)


def catalog_to_proto(catalog: Catalog) -> catalog_pb2.Catalog:
    """The live catalog as protobuf."""
    return catalog_pb2.Catalog(
        actions=[
            catalog_pb2.ActionType(
                type=a.type,
                description=a.description,
                params_schema=dict_to_struct(a.params_schema),
                output_schema=dict_to_struct(a.output_schema),
                side_effects=a.side_effects,
            )
            for a in catalog.actions.all()
        ],
        triggers=[
            catalog_pb2.TriggerType(
                type=t.type,
                description=t.description,
                config_schema=dict_to_struct(t.config_schema),
                payload_schema=dict_to_struct(t.payload_schema),
            )
            for t in catalog.triggers.all()
        ],
        capabilities=[
            catalog_pb2.Capability(
                id=c.id,
                description=c.description,
                input_schema=dict_to_struct(c.input_schema),
                output_schema=dict_to_struct(c.output_schema),
            )
            for c in catalog.capabilities.all()
        ],
    )


def _webhook(endpoint: Endpoint) -> pb.Webhook:
    return pb.Webhook(trigger_id=endpoint.trigger_id, hook_id=endpoint.hook_id, path=endpoint.path)


class DefinitionsApi(pb_grpc.DefinitionsServiceServicer):
    """Implements the RPCs of DefinitionsService."""

    def __init__(
        self,
        service: DefinitionsService,
        access: AccessService,
        audit: AuditLog,
        webhooks: WebhookService,
        quotas: Quotas,
        *,
        signer: TokenSigner,
        service_token_ttl_seconds: int = DEFAULT_SERVICE_TOKEN_TTL,
        mcp: McpServers | None = None,
    ) -> None:
        self._svc = service
        self._mcp = mcp
        self._audit = audit
        self._access = access
        self._signer = signer
        self._service_token_ttl = service_token_ttl_seconds
        self._hooks = webhooks
        self._quotas = quotas

    async def _webhooks(self, row: Any) -> list[pb.Webhook]:
        """The webhook URLs of an automation row (its latest definition)."""
        endpoints = await self._hooks.endpoints(current_principal(), row.id, row.definition)
        return [_webhook(e) for e in endpoints]

    async def ValidateDefinition(
        self, request: pb.ValidateDefinitionRequest, context: Ctx
    ) -> pb.ValidateDefinitionResponse:
        violations = await self._svc.validate_in_workspace(
            current_principal(), _definition(request)
        )
        return pb.ValidateDefinitionResponse(
            valid=not violations,
            violations=[
                definition_pb2.FieldViolation(field=v.field, description=v.description)
                for v in violations
            ],
        )

    async def CreateAutomation(
        self, request: pb.CreateAutomationRequest, context: Ctx
    ) -> pb.CreateAutomationResponse:
        row = await self._svc.create(
            current_principal(),
            _definition(request),
            request_id=request.request_id,
            paused=request.paused,
        )
        return pb.CreateAutomationResponse(
            automation=automation_to_proto(row), webhooks=await self._webhooks(row)
        )

    async def GetAutomation(
        self, request: pb.GetAutomationRequest, context: Ctx
    ) -> pb.GetAutomationResponse:
        row, definition = await self._svc.get(
            current_principal(),
            request.automation_id,
            request.version,
            workspace_id=request.workspace_id,
        )
        automation = automation_to_proto(row, definition, version=request.version or row.version)
        if request.version:
            automation.version = request.version
        return pb.GetAutomationResponse(automation=automation, webhooks=await self._webhooks(row))

    async def ListAutomations(
        self, request: pb.ListAutomationsRequest, context: Ctx
    ) -> pb.ListAutomationsResponse:
        page = await self._svc.list_automations(
            current_principal(),
            size=request.page_size,
            token=request.page_token,
            status=STATUS_FROM_PB.get(request.status),
            tag=request.tag,
            name_prefix=request.name_prefix,
        )
        return pb.ListAutomationsResponse(
            automations=[automation_to_proto(r) for r in page.rows],
            next_page_token=page.next_token,
        )

    async def UpdateAutomation(
        self, request: pb.UpdateAutomationRequest, context: Ctx
    ) -> pb.UpdateAutomationResponse:
        row = await self._svc.update(
            current_principal(),
            request.automation_id,
            version=request.version,
            raw=_definition(request),
            request_id=request.request_id,
        )
        return pb.UpdateAutomationResponse(
            automation=automation_to_proto(row), webhooks=await self._webhooks(row)
        )

    async def ListAutomationVersions(
        self, request: pb.ListAutomationVersionsRequest, context: Ctx
    ) -> pb.ListAutomationVersionsResponse:
        rows, token = await self._svc.list_versions(
            current_principal(),
            request.automation_id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListAutomationVersionsResponse(
            versions=[version_to_proto(r) for r in rows], next_page_token=token
        )

    async def PauseAutomation(
        self, request: pb.PauseAutomationRequest, context: Ctx
    ) -> pb.PauseAutomationResponse:
        row = await self._svc.set_status(
            current_principal(), request.automation_id, kind="paused", note=request.note
        )
        return pb.PauseAutomationResponse(automation=automation_to_proto(row))

    async def ResumeAutomation(
        self, request: pb.ResumeAutomationRequest, context: Ctx
    ) -> pb.ResumeAutomationResponse:
        row = await self._svc.set_status(current_principal(), request.automation_id, kind="resumed")
        return pb.ResumeAutomationResponse(automation=automation_to_proto(row))

    async def ArchiveAutomation(
        self, request: pb.ArchiveAutomationRequest, context: Ctx
    ) -> pb.ArchiveAutomationResponse:
        row = await self._svc.set_status(
            current_principal(), request.automation_id, kind="archived"
        )
        return pb.ArchiveAutomationResponse(automation=automation_to_proto(row))

    async def DeleteAutomation(
        self, request: pb.DeleteAutomationRequest, context: Ctx
    ) -> pb.DeleteAutomationResponse:
        await self._svc.delete(current_principal(), request.automation_id)
        return pb.DeleteAutomationResponse()

    async def GetDefinitionSchema(
        self, request: pb.GetDefinitionSchemaRequest, context: Ctx
    ) -> pb.GetDefinitionSchemaResponse:
        return pb.GetDefinitionSchemaResponse(
            json_schema=dict_to_struct(definition_json_schema()),
            catalog=catalog_to_proto(self._svc.catalog),
        )

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Ctx) -> pb.WhoAmIResponse:
        caller = current_principal()
        return pb.WhoAmIResponse(
            principal=caller.subject,
            workspace_id=caller.workspace_id,
            role=ROLE_TO_PB.get(caller.role.value, definitions_pb2.ROLE_UNSPECIFIED),
            token_id=caller.token_id,
        )

    async def CreateWorkspace(
        self, request: pb.CreateWorkspaceRequest, context: Ctx
    ) -> pb.CreateWorkspaceResponse:
        row, token = await self._access.create_workspace(current_principal(), request.name)
        return pb.CreateWorkspaceResponse(
            workspace=definitions_pb2.Workspace(
                id=row.id, name=row.name, create_time=ts(row.created_at)
            ),
            owner_token=token,
        )

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Ctx
    ) -> pb.ListMembersResponse:
        rows = await self._access.list_members(current_principal())
        return pb.ListMembersResponse(members=[_member(r) for r in rows])

    async def SetMember(self, request: pb.SetMemberRequest, context: Ctx) -> pb.SetMemberResponse:
        role = _role(request.role)
        row = await self._access.set_member(current_principal(), request.principal, role)
        return pb.SetMemberResponse(member=_member(row))

    async def RemoveMember(
        self, request: pb.RemoveMemberRequest, context: Ctx
    ) -> pb.RemoveMemberResponse:
        await self._access.remove_member(current_principal(), request.principal)
        return pb.RemoveMemberResponse()

    async def CreateApiToken(
        self, request: pb.CreateApiTokenRequest, context: Ctx
    ) -> pb.CreateApiTokenResponse:
        row, secret = await self._access.create_token(
            current_principal(),
            request.principal,
            _role(request.role),
            request.name,
            int(request.ttl_seconds),
        )
        return pb.CreateApiTokenResponse(token=_token(row), secret=secret)

    async def ListApiTokens(
        self, request: pb.ListApiTokensRequest, context: Ctx
    ) -> pb.ListApiTokensResponse:
        rows = await self._access.list_tokens(current_principal(), request.include_inactive)
        return pb.ListApiTokensResponse(tokens=[_token(r) for r in rows])

    async def RevokeApiToken(
        self, request: pb.RevokeApiTokenRequest, context: Ctx
    ) -> pb.RevokeApiTokenResponse:
        row = await self._access.revoke_token(current_principal(), request.token_id)
        return pb.RevokeApiTokenResponse(token=_token(row))

    async def SetSecret(self, request: pb.SetSecretRequest, context: Ctx) -> pb.SetSecretResponse:
        row = await self._access.set_secret(current_principal(), request.name, request.value)
        return pb.SetSecretResponse(secret=_secret(row))

    async def ListSecrets(
        self, request: pb.ListSecretsRequest, context: Ctx
    ) -> pb.ListSecretsResponse:
        rows = await self._access.list_secrets(current_principal())
        return pb.ListSecretsResponse(secrets=[_secret(r) for r in rows])

    async def DeleteSecret(
        self, request: pb.DeleteSecretRequest, context: Ctx
    ) -> pb.DeleteSecretResponse:
        await self._access.delete_secret(current_principal(), request.name)
        return pb.DeleteSecretResponse()

    def _require_mcp(self) -> McpServers:
        if self._mcp is None:
            raise FailedPrecondition("MCP servers are not available here")
        return self._mcp

    async def RegisterMcpServer(
        self, request: pb.RegisterMcpServerRequest, context: Ctx
    ) -> pb.RegisterMcpServerResponse:
        row, tools = await self._require_mcp().register(
            current_principal(), request.name, request.url, dict(request.headers)
        )
        return pb.RegisterMcpServerResponse(server=_mcp_server(row, tools))

    async def ListMcpServers(
        self, request: pb.ListMcpServersRequest, context: Ctx
    ) -> pb.ListMcpServersResponse:
        rows = await self._require_mcp().servers(current_principal())
        return pb.ListMcpServersResponse(servers=[_mcp_server(r) for r in rows])

    async def DeleteMcpServer(
        self, request: pb.DeleteMcpServerRequest, context: Ctx
    ) -> pb.DeleteMcpServerResponse:
        await self._require_mcp().delete(current_principal(), request.name)
        return pb.DeleteMcpServerResponse()

    async def ResolveMcpServers(
        self, request: pb.ResolveMcpServersRequest, context: Ctx
    ) -> pb.ResolveMcpServersResponse:
        found, missing = await self._require_mcp().resolve(
            current_principal(), request.workspace_id, list(request.names)
        )
        return pb.ResolveMcpServersResponse(
            servers=[
                pb.ResolvedMcpServer(name=s.name, url=s.url, headers=s.headers) for s in found
            ],
            missing=missing,
        )

    async def StreamScheduleTriggers(
        self, request: pb.StreamScheduleTriggersRequest, context: Ctx
    ) -> AsyncIterator[pb.StreamScheduleTriggersResponse]:
        chunks = self._svc.schedule_triggers(current_principal(), chunk=request.chunk_size)
        async for chunk in chunks:
            yield pb.StreamScheduleTriggersResponse(
                automations=[schedule_triggers_to_proto(item) for item in chunk]
            )

    async def ResolveSecrets(
        self, request: pb.ResolveSecretsRequest, context: Ctx
    ) -> pb.ResolveSecretsResponse:
        values, missing = await self._access.resolve_secrets(
            current_principal(), request.workspace_id, list(request.names)
        )
        return pb.ResolveSecretsResponse(values=values, missing=missing)

    async def IssueServiceToken(
        self, request: pb.IssueServiceTokenRequest, context: Ctx
    ) -> pb.IssueServiceTokenResponse:
        # The permission table lets only a bootstrap credential here; it names the service.
        caller = current_principal()
        if caller.role != Role.BOOTSTRAP or not caller.subject.startswith("service:"):
            raise PermissionDenied("only a service's bootstrap credential obtains a service token")
        token, exp = self._signer.service_token(
            caller.subject.removeprefix("service:"), ttl_seconds=self._service_token_ttl
        )
        return pb.IssueServiceTokenResponse(
            token=token, expire_time=ts(datetime.fromtimestamp(exp, UTC))
        )

    async def ListAuditEvents(
        self, request: audit_pb2.ListAuditEventsRequest, context: Ctx
    ) -> audit_pb2.ListAuditEventsResponse:
        where = AuditFilter(
            actor=request.actor,
            target_type=request.target_type,
            target_id=request.target_id,
            action=request.action,
            start=from_timestamp(request.start_time) if request.HasField("start_time") else None,
            end=from_timestamp(request.end_time) if request.HasField("end_time") else None,
        )
        rows, token = await self._audit.list(
            current_principal(), where, size=request.page_size, token=request.page_token
        )
        return audit_pb2.ListAuditEventsResponse(
            events=[to_proto(r) for r in rows], next_page_token=token
        )

    async def RotateWebhook(
        self, request: pb.RotateWebhookRequest, context: Ctx
    ) -> pb.RotateWebhookResponse:
        caller = current_principal()
        row, _ = await self._svc.get(caller, request.automation_id)
        if not request.trigger_id:
            raise ValidationFailed([Violation("trigger_id", "required")])
        endpoint = await self._hooks.rotate(caller, row.id, request.trigger_id)
        return pb.RotateWebhookResponse(webhook=_webhook(endpoint))

    async def MatchEventTriggers(
        self, request: pb.MatchEventTriggersRequest, context: Ctx
    ) -> pb.MatchEventTriggersResponse:
        found, listens = await match_event_triggers(
            self._hooks.engine,
            current_principal(),
            workspace_id=request.workspace_id,
            subject=request.subject,
            source_automation_id=request.source_automation_id,
            source_status=request.source_status,
        )
        return pb.MatchEventTriggersResponse(
            matches=[
                pb.EventTriggerMatch(
                    automation_id=m.automation_id,
                    version=m.version,
                    trigger_id=m.trigger_id,
                    config=dict_to_struct(m.config),
                    created_by=m.created_by,
                )
                for m in found
            ],
            no_listeners=not listens,
        )

    async def SetWorkspaceQuotas(
        self, request: pb.SetWorkspaceQuotasRequest, context: Ctx
    ) -> pb.SetWorkspaceQuotasResponse:
        limits = await self._quotas.set(
            current_principal(), request.workspace_id, dict(request.limits), list(request.reset)
        )
        return pb.SetWorkspaceQuotasResponse(limits=limits)

    async def GetWorkspaceQuotas(
        self, request: pb.GetWorkspaceQuotasRequest, context: Ctx
    ) -> pb.GetWorkspaceQuotasResponse:
        ws, limits, active = await self._quotas.get(current_principal(), request.workspace_id)
        return pb.GetWorkspaceQuotasResponse(
            workspace_id=ws, limits=limits, active_automations=active
        )

    async def AuthenticateWebhook(
        self, request: pb.AuthenticateWebhookRequest, context: Ctx
    ) -> pb.AuthenticateWebhookResponse:
        delivery = await self._hooks.authenticate(
            current_principal(), request.hook_id, dict(request.headers), request.body
        )
        return pb.AuthenticateWebhookResponse(
            workspace_id=delivery.workspace_id,
            automation_id=delivery.automation_id,
            version=delivery.version,
            status=STATUS_TO_PB[delivery.status],
            trigger_id=delivery.trigger.trigger_id,
            config=dict_to_struct(delivery.trigger.config),
            delivery_id=delivery.delivery_id,
            created_by=delivery.created_by,
        )


def _role(value: int) -> Role | None:
    name = ROLE_FROM_PB.get(value)
    return Role(name) if name else None


def _member(row: Any) -> definitions_pb2.Member:
    return definitions_pb2.Member(
        workspace_id=row.workspace_id, principal=row.principal, role=ROLE_TO_PB[row.role]
    )


def _token(row: Any) -> definitions_pb2.ApiToken:
    return definitions_pb2.ApiToken(
        id=row.id,
        workspace_id=row.workspace_id,
        principal=row.principal,
        role=ROLE_TO_PB[row.role],
        name=row.name,
        create_time=ts(row.created_at),
        expire_time=ts(row.expires_at),
        revoke_time=ts(row.revoked_at),
    )


def _mcp_server(row: Any, tools: Sequence[McpTool] = ()) -> pb.McpServerInfo:
    return pb.McpServerInfo(
        name=row.name,
        url=row.url,
        header_names=sorted(row.headers),
        tools=[
            pb.McpToolInfo(
                name=t.name, description=t.description, input_schema=dict_to_struct(t.input_schema)
            )
            for t in tools
        ],
        create_time=ts(row.created_at),
        update_time=ts(row.updated_at),
    )


def _secret(row: Any) -> definitions_pb2.SecretInfo:
    return definitions_pb2.SecretInfo(
        name=row.name, create_time=ts(row.created_at), update_time=ts(row.updated_at)
    )
