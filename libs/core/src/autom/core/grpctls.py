"""TLS of gRPC between Autom's processes: server certificates, optional client certificates.

Plaintext unless configured (make run). Every service server, every channel between services,
the gateway's and the CLI's channels read the same AUTOM_GRPC_TLS_* settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import grpc
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AUTOM_GRPC_TLS_"


class GrpcTls(BaseSettings):
    """AUTOM_GRPC_TLS_*: PEM files; a server serves TLS with `cert_file`, a channel dials TLS
    with `ca_file`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    # The server's certificate chain and private key: the server speaks TLS only.
    cert_file: Path | None = None
    key_file: Path | None = None
    # Set: the server requires a client certificate signed by this CA (mutual TLS).
    client_ca_file: Path | None = None
    # Set: channels dial TLS and trust servers signed by this CA.
    ca_file: Path | None = None
    # The certificate channels present when servers require one (mutual TLS).
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    # The name checked in server certificates instead of the dialled host (e.g. an IP).
    server_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GrpcTls:
        """The settings named in `env` (AUTOM_GRPC_TLS_*; empty means unset)."""
        given = {
            k.removeprefix(ENV_PREFIX).lower(): v.strip()
            for k, v in env.items()
            if k.startswith(ENV_PREFIX) and v.strip()
        }
        return cls.model_validate(given)

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        for cert, key in (("cert_file", "key_file"), ("client_cert_file", "client_key_file")):
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                raise ValueError(
                    f"{ENV_PREFIX}{cert.upper()} and {ENV_PREFIX}{key.upper()} go together"
                )
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError(f"{ENV_PREFIX}CLIENT_CA_FILE (mutual TLS) needs {ENV_PREFIX}CERT_FILE")
        if self.client_cert_file is not None and self.ca_file is None:
            raise ValueError(f"{ENV_PREFIX}CLIENT_CERT_FILE needs {ENV_PREFIX}CA_FILE")
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials of a server, or None for plaintext; read when the server starts."""
        if self.cert_file is None or self.key_file is None:
            return None
        client_ca = _read(self.client_ca_file, "CLIENT_CA_FILE")
        return grpc.ssl_server_credentials(
            [(_read(self.key_file, "KEY_FILE"), _read(self.cert_file, "CERT_FILE"))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials of a channel, or None for plaintext."""
        if self.ca_file is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA_FILE"),
            private_key=_read(self.client_key_file, "CLIENT_KEY_FILE"),
            certificate_chain=_read(self.client_cert_file, "CLIENT_CERT_FILE"),
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel options TLS needs (the name to verify), to add to a channel's own."""
        if self.ca_file is not None and self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []

    def aio_channel(
        self,
        address: str,
        *,
        options: list[tuple[str, Any]] | None = None,
        interceptors: list[Any] | None = None,
    ) -> grpc.aio.Channel:
        """An asyncio channel to `address`: TLS when configured, else plaintext."""
        credentials = self.channel_credentials()
        opts = [*(options or []), *self.channel_options()]
        if credentials is None:
            return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
        return grpc.aio.secure_channel(
            address, credentials, options=opts, interceptors=interceptors
        )

    def channel(self, address: str) -> grpc.Channel:
        """A blocking channel to `address` (the CLI): TLS when configured, else plaintext."""
        credentials = self.channel_credentials()
        if credentials is None:
            return grpc.insecure_channel(address)
        return grpc.secure_channel(address, credentials, options=self.channel_options())


def _read(path: Path | None, name: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{ENV_PREFIX}{name}: cannot read {path}: {exc.strerror}") from None
