"""Settings of the definitions service."""

from __future__ import annotations

from pydantic import SecretStr

from autom.core.settings import ServiceSettings


class DefinitionsSettings(ServiceSettings):
    """AUTOM_* variables the definitions service reads."""

    grpc_port: int = 50051
    # MultiFernet keys for secrets at rest, comma-separated, newest first.
    secrets_key: SecretStr | None = None
