"""Settings of the definitions service."""

from __future__ import annotations

from pydantic import SecretStr

from autom.core.settings import OutboundHttpSettings


class DefinitionsSettings(OutboundHttpSettings):
    """AUTOM_* variables the definitions service reads.

    The http_request allow-list (AUTOM_HTTP_ALLOW_CIDRS / _HOSTS) is the executor's: literal
    URLs to addresses it would refuse are refused at validation time.
    """

    grpc_port: int = 50051
    # MultiFernet keys for secrets at rest, comma-separated, newest first.
    secrets_key: SecretStr | None = None
