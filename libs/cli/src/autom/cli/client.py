"""Synchronous gRPC access to the four services with the caller's bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from autom.api.definitions.v1 import definitions_service_pb2_grpc
from autom.api.drafter.v1 import drafter_service_pb2_grpc
from autom.api.executor.v1 import executor_service_pb2_grpc
from autom.api.scheduler.v1 import scheduler_service_pb2_grpc
from autom.cli.config import CliConfig
from autom.cli.errors import from_rpc_error

_STUBS: dict[str, Any] = {
    "definitions": definitions_service_pb2_grpc.DefinitionsServiceStub,
    "scheduler": scheduler_service_pb2_grpc.SchedulerServiceStub,
    "executor": executor_service_pb2_grpc.ExecutorServiceStub,
    "drafter": drafter_service_pb2_grpc.DrafterServiceStub,
}


class Api:
    """One channel per service, opened on first use; every failure becomes a CliError."""

    def __init__(self, config: CliConfig) -> None:
        self.config = config
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, Any] = {}

    def _stub(self, service: str) -> Any:
        if service not in self._stubs:
            channel = self.config.tls.channel(self.config.addresses[service])
            self._channels[service] = channel
            self._stubs[service] = _STUBS[service](channel)
        return self._stubs[service]

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.config.token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def _error(self, service: str, exc: grpc.RpcError) -> Exception:
        return from_rpc_error(
            exc, service, self.config.addresses[service], has_token=bool(self.config.token)
        )

    def call(self, service: str, method: str, request: Any, timeout: float | None = None) -> Any:
        """A unary call; raises CliError on failure."""
        fn = getattr(self._stub(service), method)
        try:
            return fn(
                request,
                metadata=self._metadata(),
                timeout=timeout or self.config.timeout_seconds,
            )
        except grpc.RpcError as exc:
            raise self._error(service, exc) from None

    def stream(self, service: str, method: str, request: Any) -> Iterator[Any]:
        """A server stream without a deadline (it ends when the server ends it)."""
        fn = getattr(self._stub(service), method)
        call = fn(request, metadata=self._metadata())
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self._error(service, exc) from None
        finally:
            call.cancel()

    def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._stubs.clear()
