"""The auth interceptor guards every RPC shape, client-streaming and bidi included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from autom.core.auth import Role, TokenSigner, generate_private_key, private_key_text
from autom.core.grpcserver import GrpcApp, bearer

SECRET = private_key_text(generate_private_key())
SERVICE = "autom.test.v1.Probe"


async def _uu(request: bytes, context: Any) -> bytes:
    return request


async def _us(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield request


async def _su(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([r async for r in requests])


async def _ss(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


def _register(server: grpc.aio.Server) -> None:
    # A service with a method of each shape that is missing from the permission table, as a
    # new RPC would be if someone forgot the table.
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "UnaryUnary": grpc.unary_unary_rpc_method_handler(_uu),
                    "UnaryStream": grpc.unary_stream_rpc_method_handler(_us),
                    "StreamUnary": grpc.stream_unary_rpc_method_handler(_su),
                    "StreamStream": grpc.stream_stream_rpc_method_handler(_ss),
                },
            ),
        )
    )


@pytest.fixture
async def probe() -> AsyncIterator[GrpcApp]:
    app = GrpcApp(
        name="probe", verifier=TokenSigner(SECRET), service_names=[], register=[_register]
    )
    await app.start()
    yield app
    await app.stop()


async def _call(chan: grpc.aio.Channel, shape: str, metadata: Any) -> grpc.StatusCode:
    path = f"/{SERVICE}/{shape}"

    async def requests() -> AsyncIterator[bytes]:
        yield b"x"

    try:
        if shape == "UnaryUnary":
            await chan.unary_unary(path)(b"x", metadata=metadata, timeout=10)
        elif shape == "UnaryStream":
            async for _ in chan.unary_stream(path)(b"x", metadata=metadata, timeout=10):
                pass
        elif shape == "StreamUnary":
            await chan.stream_unary(path)(requests(), metadata=metadata, timeout=10)
        else:
            async for _ in chan.stream_stream(path)(requests(), metadata=metadata, timeout=10):
                pass
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("shape", ["UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream"])
async def test_unlisted_rpc_of_any_shape_is_refused(probe: GrpcApp, shape: str) -> None:
    owner, _, _ = TokenSigner(SECRET).issue(subject="user:o", workspace_id="w", role=Role.OWNER)
    async with grpc.aio.insecure_channel(probe.address) as chan:
        assert await _call(chan, shape, None) == grpc.StatusCode.UNAUTHENTICATED
        assert await _call(chan, shape, bearer(owner)) == grpc.StatusCode.PERMISSION_DENIED
