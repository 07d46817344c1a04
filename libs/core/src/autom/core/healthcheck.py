"""`python -m autom.core.healthcheck [host:port] [service]`: exit 0 when the gRPC health of
`service` ("" = readiness, "liveness") is SERVING; for container healthchecks.

The address defaults to 127.0.0.1:$AUTOM_GRPC_PORT, so one command fits every service.
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    """True when the server at `address` reports `service` SERVING within `timeout`."""
    async with grpc.aio.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            reply = await stub.Check(request, timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    """Entry point: exit 0 if SERVING, 1 otherwise."""
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    address = args[0] if args else f"127.0.0.1:{os.environ.get('AUTOM_GRPC_PORT', '50051')}"
    service = args[1] if len(args) > 1 else ""
    sys.exit(0 if asyncio.run(check(address, service)) else 1)


if __name__ == "__main__":
    main()
