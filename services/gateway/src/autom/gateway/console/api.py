"""The console's client of the public gRPC API: the caller's token on every call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message as pb_message
from google.rpc import code_pb2, error_details_pb2

from autom.api.definitions.v1 import definitions_service_pb2_grpc
from autom.api.drafter.v1 import drafter_service_pb2_grpc
from autom.api.executor.v1 import executor_service_pb2_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc
from autom.core.grpcserver import bearer
from autom.gateway.errors import http_status, status_from_rpc_error

_STUBS: dict[str, Callable[[grpc.aio.Channel], Any]] = {
    "definitions": definitions_service_pb2_grpc.DefinitionsServiceStub,
    "scheduler": scheduler_service_pb2_grpc.SchedulerServiceStub,
    "executor": executor_service_pb2_grpc.ExecutorServiceStub,
    "drafter": drafter_service_pb2_grpc.DrafterServiceStub,
}


@dataclass
class ApiError(Exception):
    """An RPC that failed: its HTTP-equivalent status, message and field violations."""

    http: int
    code: int
    message: str
    violations: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """The message with its field violations, for a message next to a form."""
        details = "; ".join(f"{f}: {d}" for f, d in self.violations)
        return f"{self.message}{' — ' + details if details else ''}"


class Api:
    """Calls `service.Method(request)` as the signed-in principal."""

    def __init__(
        self, channel_for: Callable[[str], grpc.aio.Channel], token: str, timeout: float
    ) -> None:
        self._channel_for = channel_for
        self._metadata = bearer(token)
        self._timeout = timeout

    def _method(self, service: str, method: str) -> Any:
        return getattr(_STUBS[service](self._channel_for(service)), method)

    async def call(
        self,
        service: str,
        method: str,
        request: pb_message.Message,
        timeout: float | None = None,
    ) -> Any:
        """One unary call (the default deadline unless `timeout`); ApiError when it fails."""
        try:
            return await self._method(service, method)(
                request, metadata=self._metadata, timeout=timeout or self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc, service) from None

    async def stream(
        self, service: str, method: str, request: pb_message.Message, timeout: float
    ) -> AsyncIterator[Any]:
        """A server stream's messages; ApiError when it fails (cancelled when left)."""
        call = self._method(service, method)(request, metadata=self._metadata, timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise api_error(exc, service) from None
        finally:
            call.cancel()


def api_error(exc: grpc.RpcError, service: str) -> ApiError:
    """The failure as the console shows it (the same status the HTTP API answers)."""
    status = status_from_rpc_error(exc, service)
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    message = status.message or code_pb2.Code.Name(status.code).lower()
    return ApiError(http_status(status.code), status.code, message, violations)
