"""One grpc.aio channel per upstream service, generic calls per route, health checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from autom.core.grpctls import GrpcTls
from autom.gateway.routing import Route

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


@dataclass(frozen=True)
class Upstream:
    """A service the gateway fronts: its key, address and fully qualified gRPC name."""

    key: str
    address: str
    service_name: str


class UpstreamPool:
    """Owns the channels; binds each route to a generic multicallable on its channel."""

    def __init__(self, upstreams: Sequence[Upstream], tls: GrpcTls | None = None) -> None:
        self.upstreams = list(upstreams)
        self._tls = tls or GrpcTls()
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def start(self, routes: Sequence[Route]) -> None:
        """Open the channels (inside the serving loop) and bind the routes."""
        for upstream in self.upstreams:
            self._channels[upstream.key] = self._tls.aio_channel(
                upstream.address, options=_CHANNEL_OPTIONS
            )
        for route in routes:
            channel = self._channels[route.service_key]
            # Requests are serialized by the codec already (bytes pass through untouched).
            if route.streaming:
                route.call = channel.unary_stream(
                    route.rpc_path,
                    request_serializer=None,
                    response_deserializer=route.response_cls.FromString,
                )
            else:
                route.call = channel.unary_unary(
                    route.rpc_path,
                    request_serializer=None,
                    response_deserializer=route.response_cls.FromString,
                )

    def channel(self, key: str) -> grpc.aio.Channel:
        """The open channel to one upstream (after `start`)."""
        return self._channels[key]

    async def close(self, grace: float | None = None) -> None:
        """Close every channel (in-flight calls get `grace` seconds)."""
        channels, self._channels = list(self._channels.values()), {}
        await asyncio.gather(*(c.close(grace) for c in channels), return_exceptions=True)

    async def health(self, timeout: float) -> Mapping[str, str]:
        """Service key -> grpc.health.v1 status name (UNREACHABLE when the check failed)."""

        async def check(upstream: Upstream) -> str:
            stub = health_pb2_grpc.HealthStub(self._channels[upstream.key])
            try:
                response = await stub.Check(
                    health_pb2.HealthCheckRequest(service=upstream.service_name),
                    timeout=timeout,
                )
            except grpc.aio.AioRpcError as exc:
                log.debug("health check of %s failed: %s", upstream.key, exc.code())
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return "SERVICE_UNKNOWN"
                return "UNREACHABLE"
            name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return name

        results = await asyncio.gather(*(check(u) for u in self.upstreams))
        return {u.key: status for u, status in zip(self.upstreams, results, strict=True)}
