"""Wiring of the definitions service: runtime, outbox relay, use cases, servicer, server."""

from __future__ import annotations

from autom.api.definitions.v1 import definitions_service_pb2 as pb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as pb_grpc
from autom.core import bus
from autom.core.audit import AUDIT_STREAM
from autom.core.grpcserver import GrpcApp, Loop
from autom.core.mcptools import ToolCache
from autom.core.registry import build_catalog
from autom.core.runtime import open_runtime
from autom.definitions import db
from autom.definitions.access import AccessService, build_cipher
from autom.definitions.audit import AuditLog
from autom.definitions.grpc_api import DefinitionsApi
from autom.definitions.mcp_servers import McpServers
from autom.definitions.quotas import Quotas
from autom.definitions.service import DefinitionsService
from autom.definitions.settings import DefinitionsSettings, build_signer
from autom.definitions.webhooks import WebhookService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DefinitionsService"].full_name
# The definitions service owns the streams of definition events, token revocations and
# the audit entries of every service (it stores them).
STREAMS = (bus.DEFINITIONS_STREAM, bus.AUTH_STREAM, AUDIT_STREAM)


async def build_app(settings: DefinitionsSettings) -> GrpcApp:
    """Connect to PostgreSQL and NATS and assemble the server (not started)."""
    signer = build_signer(settings)
    rt = await open_runtime(settings, name="definitions", streams=STREAMS, verifier=signer)
    relay = bus.OutboxRelay(engine=rt.engine, table=db.outbox, js=rt.js)
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    access = AccessService(rt.engine, signer, build_cipher(key), relay)
    await access.load_revocations()
    audit = AuditLog(rt.engine)
    quotas = Quotas(rt.engine, settings.quota_defaults)
    mcp = McpServers(
        rt.engine, access, ToolCache(settings.network_policy(), ttl=settings.mcp_tools_ttl_seconds)
    )
    service = DefinitionsService(
        rt.engine, build_catalog(), relay, settings.network_policy(), quotas, mcp
    )
    api = DefinitionsApi(
        service,
        access,
        audit,
        WebhookService(rt.engine, access),
        quotas,
        signer=signer,
        service_token_ttl_seconds=settings.service_token_ttl_seconds,
        mcp=mcp,
    )
    return rt.app(
        service_names=[SERVICE_NAME],
        register=[lambda server: pb_grpc.add_DefinitionsServiceServicer_to_server(api, server)],
        background=[Loop("outbox", relay.run), Loop("audit", audit.consumer(rt.js))],
    )
