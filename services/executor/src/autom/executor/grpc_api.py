"""ExecutorService servicer: a thin adapter between protobuf and the use cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as pb
from autom.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from autom.core.auth import current_principal
from autom.core.protoconv import from_timestamp, struct_to_dict, to_timestamp
from autom.executor.actions.base import Actions
from autom.executor.convert import RUN_STATUS_NAME, action_to_proto, run_to_proto, step_proto
from autom.executor.service import ExecutorService

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ExecutorApi(pb_grpc.ExecutorServiceServicer):
    """Implements the RPCs of ExecutorService."""

    def __init__(self, service: ExecutorService, actions: Actions) -> None:
        self._svc = service
        self._actions = actions

    async def StartRun(self, request: pb.StartRunRequest, context: Ctx) -> pb.StartRunResponse:
        row = await self._svc.start_run(
            current_principal(),
            automation_id=request.automation_id,
            version=request.version,
            inputs=struct_to_dict(request.inputs),
            request_id=request.request_id,
        )
        return pb.StartRunResponse(run=run_to_proto(row))

    async def ReceiveWebhook(
        self, request: pb.ReceiveWebhookRequest, context: Ctx
    ) -> pb.ReceiveWebhookResponse:
        row, created = await self._svc.receive_webhook(
            hook_id=request.hook_id,
            headers=dict(request.headers),
            query=dict(request.query),
            body=request.body,
        )
        return pb.ReceiveWebhookResponse(run_id=row.id, created=created)

    async def GetWorkspaceUsage(
        self, request: pb.GetWorkspaceUsageRequest, context: Ctx
    ) -> pb.GetWorkspaceUsageResponse:
        ws, quotas = await self._svc.usage(current_principal(), request.workspace_id)
        return pb.GetWorkspaceUsageResponse(
            workspace_id=ws,
            quotas=[pb.QuotaUsage(name=n, current=c, limit=lim) for n, c, lim in quotas],
        )

    async def GetRun(self, request: pb.GetRunRequest, context: Ctx) -> pb.GetRunResponse:
        row = await self._svc.get_run(current_principal(), request.run_id)
        return pb.GetRunResponse(run=run_to_proto(row))

    async def ListRuns(self, request: pb.ListRunsRequest, context: Ctx) -> pb.ListRunsResponse:
        rows, token = await self._svc.list_runs(
            current_principal(),
            automation_id=request.automation_id,
            status=RUN_STATUS_NAME.get(request.status),
            created_after=(
                from_timestamp(request.created_after) if request.HasField("created_after") else None
            ),
            created_before=(
                from_timestamp(request.created_before)
                if request.HasField("created_before")
                else None
            ),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListRunsResponse(
            runs=[run_to_proto(r, with_steps=False) for r in rows], next_page_token=token
        )

    async def CancelRun(self, request: pb.CancelRunRequest, context: Ctx) -> pb.CancelRunResponse:
        row = await self._svc.cancel_run(current_principal(), request.run_id, request.reason)
        return pb.CancelRunResponse(run=run_to_proto(row))

    async def RetryRun(self, request: pb.RetryRunRequest, context: Ctx) -> pb.RetryRunResponse:
        row = await self._svc.retry_run(current_principal(), request.run_id, request.request_id)
        return pb.RetryRunResponse(run=run_to_proto(row))

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchRunResponse]:
        # Every event carries the whole run: each step record is converted once per stream.
        converted: dict[int, executor_pb2.StepRun] = {}
        async for event in self._svc.watch(current_principal(), request.run_id):
            yield pb.WatchRunResponse(
                run=run_to_proto(event.row, converted=converted),
                step=step_proto(event.step, converted) if event.step is not None else None,
                kind=event.kind,
            )

    async def ListActionTypes(
        self, request: pb.ListActionTypesRequest, context: Ctx
    ) -> pb.ListActionTypesResponse:
        return pb.ListActionTypesResponse(
            action_types=[action_to_proto(a) for a in self._actions.all()]
        )

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Ctx
    ) -> pb.ListDeadLettersResponse:
        found, token = await self._svc.list_dead_letters(
            current_principal(), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListDeadLettersResponse(
            dead_letters=[
                pb.DeadLetter(
                    sequence=d.sequence,
                    subject=d.subject,
                    reason=d.reason,
                    payload=d.payload,
                    deliveries=d.deliveries,
                    time=to_timestamp(d.time) if d.time else None,
                )
                for d in found
            ],
            next_page_token=token,
        )
