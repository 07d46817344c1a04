"""Wiring of the drafter: engine, definitions and scheduler clients, model, servicer, server."""

from __future__ import annotations

from autom.api.drafter.v1 import drafter_service_pb2 as pb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.auth import TokenSigner
from autom.core.db import create_engine
from autom.core.grpcserver import GrpcApp
from autom.core.revocations import revocation_feed
from autom.drafter.clients import DefinitionsClient, SchedulerClient
from autom.drafter.drafting import Generator
from autom.drafter.grpc_api import DrafterApi
from autom.drafter.llm import LlmClient
from autom.drafter.preview import PreviewBuilder
from autom.drafter.service import DrafterService
from autom.drafter.settings import DrafterSettings

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DrafterService"].full_name
# A preview must not wait long for a scheduler that is down: the local fallback is exact.
PREVIEW_TIMEOUT_SECONDS = 3.0


async def build_app(settings: DrafterSettings) -> GrpcApp:
    """Assemble the server (not started); a missing model is reported per call, not here."""
    engine = create_engine(
        url=settings.database_url,
        application_name="autom-drafter",
        pool_size=settings.db_pool_size,
    )
    definitions = DefinitionsClient(
        settings.definitions_addr,
        timeout=settings.rpc_timeout_seconds,
        schema_ttl=settings.schema_ttl_seconds,
    )
    scheduler = SchedulerClient(
        settings.scheduler_addr,
        timeout=min(PREVIEW_TIMEOUT_SECONDS, settings.rpc_timeout_seconds),
    )
    generator = Generator(LlmClient(settings), definitions, max_repairs=settings.max_repair_rounds)
    service = DrafterService(engine, generator, definitions, PreviewBuilder(scheduler))
    api = DrafterApi(service)
    signer = TokenSigner(settings.auth_secret.get_secret_value())
    # NATS only carries token revocations to the drafter.
    nc = await bus.connect(settings.nats_url, name="autom-drafter")
    js = nc.jetstream()
    await bus.ensure_streams(js, (bus.AUTH_STREAM,), replicas=settings.nats_stream_replicas)

    async def close() -> None:
        await definitions.close()
        await scheduler.close()
        await nc.drain()
        await engine.dispose()

    return GrpcApp(
        name="drafter",
        signer=signer,
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_DrafterServiceServicer_to_server(api, server)],
        host=settings.grpc_host,
        port=settings.grpc_port,
        grace_seconds=settings.shutdown_grace_seconds,
        background=[revocation_feed(js, signer.revocations).run],
        cleanup=[close],
    )
