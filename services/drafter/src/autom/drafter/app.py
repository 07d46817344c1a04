"""Wiring of the drafter: runtime, definitions and scheduler clients, model, servicer, server."""

from __future__ import annotations

import logging

from autom.api.drafter.v1 import drafter_service_pb2 as pb
from autom.api.drafter.v1 import drafter_service_pb2_grpc as pb_grpc
from autom.core.audit import audit_relay
from autom.core.grpcserver import GrpcApp, Loop
from autom.core.runtime import open_runtime
from autom.drafter import db
from autom.drafter.clients import DefinitionsClient, SchedulerClient
from autom.drafter.drafting import Generator
from autom.drafter.grpc_api import DrafterApi
from autom.drafter.llm import LlmClient
from autom.drafter.preview import PreviewBuilder
from autom.drafter.service import DrafterService
from autom.drafter.settings import DrafterSettings

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DrafterService"].full_name
# A preview must not wait long for a scheduler that is down: the local fallback is exact.
PREVIEW_TIMEOUT_SECONDS = 3.0


async def build_app(settings: DrafterSettings) -> GrpcApp:
    """Assemble the server (not started); a missing model is reported per call, not here."""
    if not settings.model:
        log.warning("AUTOM_DRAFTER_MODEL is not set: drafts will fail with not_configured")
    # The drafter owns no stream: NATS carries token revocations to it, its audit entries out.
    rt = await open_runtime(settings, name="drafter")
    definitions = DefinitionsClient(
        settings.definitions_addr,
        timeout=settings.rpc_timeout_seconds,
        schema_ttl=settings.schema_ttl_seconds,
        tls=settings.grpc_tls,
    )
    scheduler = SchedulerClient(
        settings.scheduler_addr,
        timeout=min(PREVIEW_TIMEOUT_SECONDS, settings.rpc_timeout_seconds),
        tls=settings.grpc_tls,
    )
    generator = Generator(LlmClient(settings), definitions, max_repairs=settings.max_repair_rounds)
    audit_outbox = audit_relay(rt.engine, db.audit_outbox, rt.js)
    service = DrafterService(
        rt.engine, generator, definitions, PreviewBuilder(scheduler), on_audit=audit_outbox.notify
    )
    api = DrafterApi(service)

    async def close() -> None:
        await definitions.close()
        await scheduler.close()

    return rt.app(
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_DrafterServiceServicer_to_server(api, server)],
        background=[Loop("audit-outbox", audit_outbox.run)],
        cleanup=[close],
    )
