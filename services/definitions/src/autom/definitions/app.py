"""Wiring of the definitions service: engine, NATS, outbox relay, servicer, server."""

from __future__ import annotations

from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp
from autom.core.registry import build_catalog
from autom.definitions import db
from autom.definitions.grpc_api import DefinitionsApi
from autom.definitions.service import DefinitionsService
from autom.definitions.settings import DefinitionsSettings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DefinitionsService"].full_name


async def build_app(settings: DefinitionsSettings) -> GrpcApp:
    """Connect to PostgreSQL and NATS and assemble the server (not started)."""
    engine = create_engine(
        url=settings.database_url,
        application_name="autom-definitions",
        pool_size=settings.db_pool_size,
    )
    nc = await bus.connect(settings.nats_url, name="autom-definitions")
    js = nc.jetstream()
    await bus.ensure_streams(js)
    relay = bus.OutboxRelay(engine=engine, table=db.outbox, js=js)
    service = DefinitionsService(engine, build_catalog(), relay)
    api = DefinitionsApi(service)

    async def close() -> None:
        await nc.drain()
        await engine.dispose()

    return GrpcApp(
        name="definitions",
        signer=TokenSigner(settings.auth_secret.get_secret_value()),
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_DefinitionsServiceServicer_to_server(api, server)],
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.shutdown_grace_seconds,
        background=[relay.run],
        cleanup=[close],
    )
