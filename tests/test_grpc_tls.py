"""gRPC over TLS between the real services, with certificates generated here."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import nats
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from autom.api.common.v1 import definition_pb2
from autom.api.definitions.v1 import definitions_service_pb2 as dpb
from autom.api.definitions.v1 import definitions_service_pb2_grpc as dgrpc
from autom.api.executor.v1 import executor_pb2
from autom.api.executor.v1 import executor_service_pb2 as epb
from autom.api.executor.v1 import executor_service_pb2_grpc as egrpc
from autom.cli.client import Api
from autom.cli.config import CliConfig
from autom.core import bus
from autom.core.grpcserver import channel
from autom.core.grpctls import GrpcTls
from autom.devstack.asgi import serve_asgi
from autom.devstack.eventually import assert_eventually
from autom.gateway.app import Gateway
from autom.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a certificate it signed for 127.0.0.1 (server and client use), and a
    certificate of another CA."""

    ca: Path
    cert: Path
    key: Path
    rogue_cert: Path
    rogue_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *, cert: x509.Certificate | None = None, key: Any = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, rogue_ca_key = _key(), _key()
    ca = _cert("autom test CA", ca_key, None, ca_key)
    rogue_ca = _cert("another CA", rogue_ca_key, None, rogue_ca_key)
    key, rogue_key = _key(), _key()
    return Pki(
        ca=_write(d / "ca.pem", cert=ca),
        cert=_write(d / "cert.pem", cert=_cert("autom", key, ca, ca_key)),
        key=_write(d / "key.pem", key=key),
        rogue_cert=_write(d / "rogue.pem", cert=_cert("autom", rogue_key, rogue_ca, rogue_ca_key)),
        rogue_key=_write(d / "rogue-key.pem", key=rogue_key),
    )


def server_tls(pki: Pki, *, mutual: bool) -> GrpcTls:
    """What every service is configured with: serve TLS, dial TLS (with its certificate)."""
    return GrpcTls(
        cert_file=pki.cert,
        key_file=pki.key,
        client_ca_file=pki.ca if mutual else None,
        ca_file=pki.ca,
        client_cert_file=pki.cert,
        client_key_file=pki.key,
    )


async def health(ch: grpc.aio.Channel) -> Any:
    async with ch:
        return await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )


async def test_a_tls_server_refuses_a_plaintext_client_and_serves_one_trusting_its_ca(
    start_app: Any, pki: Pki
) -> None:
    app = await start_app(
        "definitions",
        secrets_key=Fernet.generate_key().decode(),
        grpc_tls=server_tls(pki, mutual=False),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await health(grpc.aio.insecure_channel(app.address))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as untrusted:
        await health(GrpcTls(ca_file=pki.rogue_cert).aio_channel(app.address))
    assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE
    answer = await health(GrpcTls(ca_file=pki.ca).aio_channel(app.address))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_with_mutual_tls_a_client_without_a_trusted_certificate_is_refused(
    start_app: Any, pki: Pki
) -> None:
    app = await start_app(
        "definitions",
        secrets_key=Fernet.generate_key().decode(),
        grpc_tls=server_tls(pki, mutual=True),
    )
    for client in (
        GrpcTls(ca_file=pki.ca),
        GrpcTls(ca_file=pki.ca, client_cert_file=pki.rogue_cert, client_key_file=pki.rogue_key),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health(client.aio_channel(app.address))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    mutual = GrpcTls(ca_file=pki.ca, client_cert_file=pki.cert, client_key_file=pki.key)
    answer = await health(mutual.aio_channel(app.address))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_run_goes_end_to_end_over_mutual_tls_between_services_and_from_the_cli(
    start_app: Any, pki: Pki, owner_token: str, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)  # the test stands in for the fires stream's owner
    try:
        await bus.ensure_streams(nc.jetstream(), (bus.FIRES_STREAM,))
    finally:
        await nc.close()
    tls = server_tls(pki, mutual=True)
    definitions = await start_app(
        "definitions", secrets_key=Fernet.generate_key().decode(), grpc_tls=tls
    )
    # The executor reads the definition from definitions over its own mTLS channel.
    executor = await start_app("executor", definitions_addr=definitions.address, grpc_tls=tls)
    client = GrpcTls(ca_file=pki.ca, client_cert_file=pki.cert, client_key_file=pki.key)

    defs = dgrpc.DefinitionsServiceStub(channel(definitions.address, owner_token, client))
    raw = {
        "name": "over-tls",
        "plan": [{"id": "a", "action": "transform", "params": {"output": "ok"}}],
    }
    created = (
        await defs.CreateAutomation(
            dpb.CreateAutomationRequest(
                definition=json_format.ParseDict(raw, definition_pb2.AutomationDefinition())
            )
        )
    ).automation
    runs = egrpc.ExecutorServiceStub(channel(executor.address, owner_token, client))
    run_id = (await runs.StartRun(epb.StartRunRequest(automation_id=created.id))).run.id

    async def succeeded() -> None:
        got = (await runs.GetRun(epb.GetRunRequest(run_id=run_id))).run
        assert got.status == executor_pb2.RUN_STATUS_SUCCEEDED, got

    await assert_eventually(succeeded, timeout=15)

    # The CLI dials TLS from AUTOM_GRPC_TLS_*.
    cli = Api(
        CliConfig.load(
            {
                "AUTOM_TOKEN": owner_token,
                "AUTOM_CONFIG": str(pki.ca.parent / "cli.json"),
                "AUTOM_DEFINITIONS_ADDR": definitions.address,
                "AUTOM_GRPC_TLS_CA_FILE": str(pki.ca),
                "AUTOM_GRPC_TLS_CLIENT_CERT_FILE": str(pki.cert),
                "AUTOM_GRPC_TLS_CLIENT_KEY_FILE": str(pki.key),
            }
        )
    )
    try:
        # A blocking client: off the loop the in-process servers run on.
        got = await asyncio.to_thread(
            cli.call,
            "definitions",
            "GetAutomation",
            dpb.GetAutomationRequest(automation_id=created.id),
        )
    finally:
        cli.close()
    assert got.automation.id == created.id

    # The gateway dials the services over mutual TLS too.
    gateway = GatewaySettings(
        definitions_addr=definitions.address,
        scheduler_addr=definitions.address,
        executor_addr=executor.address,
        drafter_addr=definitions.address,
        shutdown_grace_seconds=1.0,
        grpc_tls=client,
    )
    async with serve_asgi(Gateway(gateway)) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get(
            f"/v1/runs/{run_id}", headers={"Authorization": f"Bearer {owner_token}"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["run"]["status"] == "RUN_STATUS_SUCCEEDED"
