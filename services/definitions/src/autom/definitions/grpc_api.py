"""DefinitionsService servicer: a thin adapter between protobuf and the use cases."""

from __future__ import annotations

from typing import Any

import grpc

from autom.api.common.v1 import catalog_pb2, definition_pb2
from autom.api.definitions.v1 import definitions_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core.auth import current_principal
from autom.core.errors import ValidationFailed, Violation
from autom.core.protoconv import dict_to_struct
from autom.core.registry import Catalog
from autom.definitions.convert import (
    ROLE_TO_PB,
    STATUS_FROM_PB,
    automation_to_proto,
    definition_to_json,
    version_to_proto,
)
from autom.definitions.domain.model import definition_json_schema
from autom.definitions.service import DefinitionsService

Ctx = grpc.aio.ServicerContext[Any, Any]


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


class DefinitionsApi(pb_grpc.DefinitionsServiceServicer):
    """Implements the RPCs of DefinitionsService."""

    def __init__(self, service: DefinitionsService) -> None:
        self._svc = service

    async def ValidateDefinition(
        self, request: pb.ValidateDefinitionRequest, context: Ctx
    ) -> pb.ValidateDefinitionResponse:
        violations = self._svc.validate(_definition(request))
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
        return pb.CreateAutomationResponse(automation=automation_to_proto(row))

    async def GetAutomation(
        self, request: pb.GetAutomationRequest, context: Ctx
    ) -> pb.GetAutomationResponse:
        row, definition = await self._svc.get(
            current_principal(), request.automation_id, request.version
        )
        automation = automation_to_proto(row, definition)
        if request.version:
            automation.version = request.version
        return pb.GetAutomationResponse(automation=automation)

    async def ListAutomations(
        self, request: pb.ListAutomationsRequest, context: Ctx
    ) -> pb.ListAutomationsResponse:
        page = await self._svc.list(
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
        return pb.UpdateAutomationResponse(automation=automation_to_proto(row))

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
