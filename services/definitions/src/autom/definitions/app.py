"""Wiring of the definitions service: engine, NATS, outbox relay, servicer, server."""

from __future__ import annotations

from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp
from autom.core.registry import build_catalog
from autom.core.revocations import revocation_feed
from autom.definitions import db
from autom.definitions.access import AccessService, build_cipher
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
    await bus.ensure_streams(js, replicas=settings.nats_stream_replicas)
    relay = bus.OutboxRelay(engine=engine, table=db.outbox, js=js)
    signer = TokenSigner(settings.auth_secret.get_secret_value())
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    access = AccessService(engine, signer, build_cipher(key), relay)
    await access.load_revocations()
    service = DefinitionsService(engine, build_catalog(), relay)
    api = DefinitionsApi(service, access)

    async def close() -> None:
        await nc.drain()
        await engine.dispose()

    return GrpcApp(
        name="definitions",
        signer=signer,
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_DefinitionsServiceServicer_to_server(api, server)],
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.shutdown_grace_seconds,
        background=[relay.run, revocation_feed(js, signer.revocations).run],
        cleanup=[close],
    )
