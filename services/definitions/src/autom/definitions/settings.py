"""Settings of the definitions service."""

from __future__ import annotations

from pydantic import SecretStr

from autom.core.quotas import QuotaDefaults
from autom.core.settings import ServiceSettings


class DefinitionsSettings(ServiceSettings):
    """AUTOM_* variables the definitions service reads."""

    grpc_port: int = 50051
    # MultiFernet keys for secrets at rest, comma-separated, newest first.
    secrets_key: SecretStr | None = None
    # Quotas of a workspace the deployment admin set nothing for, as JSON in
    # AUTOM_QUOTA_DEFAULTS, e.g. {"runs_per_minute": 120}; 0 is no limit.
    quota_defaults: QuotaDefaults = QuotaDefaults()
