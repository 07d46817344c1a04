"""Every RPC of every service is in the permission table and refuses a caller without a token."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

import autom.api
from autom.core.auth import METHOD_PERMISSIONS

from .conftest import StartApp

SERVICES = ("definitions", "scheduler", "executor", "drafter")
# Served by every GrpcApp next to the service itself; public by design.
INFRASTRUCTURE = {
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.health.v1.Health/List",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
}
# The one public autom RPC: a webhook delivery proves itself with its trigger's signature
# (checked by the definitions service), since its senders hold no Autom token.
PUBLIC = {"/autom.api.executor.v1.ExecutorService/ReceiveWebhook"}


def _methods() -> dict[str, MethodDescriptor]:
    """Every method of every service descriptor under autom.api, by full path."""
    found: dict[str, MethodDescriptor] = {}
    for info in pkgutil.walk_packages(autom.api.__path__, "autom.api."):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(info.name)
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found[f"/{service.full_name}/{method.name}"] = method
    return found


def test_the_permission_table_names_every_method_and_nothing_else() -> None:
    methods = _methods()
    assert {m.split("/")[1].split(".")[2] for m in methods} == set(SERVICES)
    assert set(methods) - set(METHOD_PERMISSIONS) == set()
    assert set(METHOD_PERMISSIONS) - set(methods) == INFRASTRUCTURE
    public = {m for m in methods if METHOD_PERMISSIONS[m] is None}
    assert public == PUBLIC, "no public autom RPC but webhook deliveries"


async def _call_without_token(chan: grpc.aio.Channel, path: str, method: MethodDescriptor) -> None:
    request = GetMessageClass(method.input_type)().SerializeToString()

    async def requests() -> AsyncIterator[bytes]:
        yield request

    ident = {"request_serializer": None, "response_deserializer": None}
    if method.client_streaming and method.server_streaming:
        async for _ in chan.stream_stream(path, **ident)(requests(), timeout=10):
            pass
    elif method.client_streaming:
        await chan.stream_unary(path, **ident)(requests(), timeout=10)
    elif method.server_streaming:
        async for _ in chan.unary_stream(path, **ident)(request, timeout=10):
            pass
    else:
        await chan.unary_unary(path, **ident)(request, timeout=10)


async def test_every_rpc_of_every_service_refuses_a_missing_token(start_app: StartApp) -> None:
    addresses = {name: (await start_app(name)).address for name in SERVICES}
    refused: dict[str, grpc.StatusCode] = {}
    for path, method in _methods().items():
        service = path.split("/")[1].split(".")[2]
        async with grpc.aio.insecure_channel(addresses[service]) as chan:
            try:
                await _call_without_token(chan, path, method)
                refused[path] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as err:
                refused[path] = err.code()
    assert len(refused) == len(_methods()) > 40
    assert {p: c for p, c in refused.items() if c != grpc.StatusCode.UNAUTHENTICATED} == {
        # Refused all the same: no hook has an empty id, so nothing is looked up or created.
        p: grpc.StatusCode.NOT_FOUND
        for p in PUBLIC
    }
