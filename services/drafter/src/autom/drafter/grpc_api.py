"""DrafterService servicer: a thin adapter between protobuf and the use cases."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from autom.api.drafter.v1 import drafter_service_pb2 as pb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as pb_grpc
from autom.core.auth import current_principal
from autom.core.errors import ValidationFailed, Violation
from autom.drafter.convert import STATUS_FROM_PB, definition_to_json, draft_to_proto
from autom.drafter.service import DrafterService

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class DrafterApi(pb_grpc.DrafterServiceServicer):
    """Implements the RPCs of DrafterService."""

    def __init__(self, service: DrafterService) -> None:
        self._svc = service

    async def DraftAutomation(
        self, request: pb.DraftAutomationRequest, context: Ctx
    ) -> pb.DraftAutomationResponse:
        draft = await self._svc.draft(
            current_principal(),
            intent=request.intent,
            timezone=request.timezone,
            automation_id=request.automation_id,
            request_id=request.request_id,
        )
        return pb.DraftAutomationResponse(draft=draft_to_proto(draft))

    async def RefineDraft(
        self, request: pb.RefineDraftRequest, context: Ctx
    ) -> pb.RefineDraftResponse:
        draft = await self._svc.refine(
            current_principal(),
            draft_id=request.draft_id,
            instruction=request.instruction,
            request_id=request.request_id,
        )
        return pb.RefineDraftResponse(draft=draft_to_proto(draft))

    async def GetDraft(self, request: pb.GetDraftRequest, context: Ctx) -> pb.GetDraftResponse:
        draft = await self._svc.get(current_principal(), request.draft_id)
        return pb.GetDraftResponse(draft=draft_to_proto(draft))

    async def ListDrafts(
        self, request: pb.ListDraftsRequest, context: Ctx
    ) -> pb.ListDraftsResponse:
        if request.status and request.status not in STATUS_FROM_PB:
            raise ValidationFailed([Violation("status", "unknown draft status")])
        drafts, token = await self._svc.list(
            current_principal(),
            status=STATUS_FROM_PB.get(request.status),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListDraftsResponse(
            drafts=[draft_to_proto(d) for d in drafts], next_page_token=token
        )

    async def ApproveDraft(
        self, request: pb.ApproveDraftRequest, context: Ctx
    ) -> pb.ApproveDraftResponse:
        edited = definition_to_json(request.definition) if request.HasField("definition") else None
        draft = await self._svc.approve(
            current_principal(),
            draft_id=request.draft_id,
            expected_revision=request.expected_revision,
            edited=edited,
            request_id=request.request_id,
        )
        return pb.ApproveDraftResponse(
            draft=draft_to_proto(draft),
            automation_id=draft.automation_id,
            automation_version=draft.automation_version,
        )

    async def RejectDraft(
        self, request: pb.RejectDraftRequest, context: Ctx
    ) -> pb.RejectDraftResponse:
        draft = await self._svc.reject(
            current_principal(),
            draft_id=request.draft_id,
            reason=request.reason,
            request_id=request.request_id,
        )
        return pb.RejectDraftResponse(draft=draft_to_proto(draft))
