"""Settings of the definitions service."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from autom.core.auth import (
    DEFAULT_SERVICE_TOKEN_TTL,
    LEGACY_CREDENTIAL_SERVICES,
    ServiceCredentials,
    TokenSigner,
    legacy_credential,
    legacy_private_key,
    load_private_key,
    load_public_keys,
)
from autom.core.quotas import QuotaDefaults
from autom.core.settings import OutboundHttpSettings, legacy_secret


class DefinitionsSettings(OutboundHttpSettings):
    """AUTOM_* variables the definitions service reads.

    The http_request allow-list (AUTOM_HTTP_ALLOW_CIDRS / _HOSTS) is the executor's: literal
    URLs to addresses it would refuse are refused at validation time.
    """

    grpc_port: int = 50051
    # The Ed25519 signing key (base64url seed): only the definitions service holds it.
    auth_private_key: SecretStr
    # Older public keys still accepted while the signing key rotates (its own is implied).
    auth_public_keys: str = ""
    # `<service>:<sha256 of its credential>` entries: who may obtain service tokens.
    service_credentials: str = ""
    # Lifetime of the service tokens it issues (services refresh them at half-life).
    service_token_ttl_seconds: int = Field(default=DEFAULT_SERVICE_TOKEN_TTL, ge=1, le=24 * 3600)
    # MultiFernet keys for secrets at rest, comma-separated, newest first.
    secrets_key: SecretStr | None = None
    # Quotas of a workspace the deployment admin set nothing for, as JSON in
    # AUTOM_QUOTA_DEFAULTS, e.g. {"runs_per_minute": 120}; 0 is no limit.
    quota_defaults: QuotaDefaults = QuotaDefaults()

    @model_validator(mode="before")
    @classmethod
    def _legacy_signing_key(cls, data: Any) -> Any:
        # A legacy AUTOM_AUTH_SECRET stands for the signing key and the services' credentials.
        secret = legacy_secret(data)
        if not secret:
            return data
        data = dict(data)
        if not data.get("auth_private_key"):
            data["auth_private_key"] = legacy_private_key(secret)
        if not data.get("service_credentials"):
            data["service_credentials"] = ",".join(
                ServiceCredentials.entry(legacy_credential(secret, s))
                for s in LEGACY_CREDENTIAL_SERVICES
            )
        return data

    @field_validator("auth_private_key")
    @classmethod
    def _private_key(cls, value: SecretStr) -> SecretStr:
        try:
            load_private_key(value.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"AUTOM_AUTH_PRIVATE_KEY: {exc}") from None
        return value

    @field_validator("service_credentials")
    @classmethod
    def _credentials(cls, value: str) -> str:
        ServiceCredentials(value)
        return value


def build_signer(settings: DefinitionsSettings) -> TokenSigner:
    """The deployment's only token signer (the one place it is built from settings)."""
    return TokenSigner(
        settings.auth_private_key.get_secret_value(),
        public_keys=load_public_keys(settings.auth_public_keys),
        credentials=ServiceCredentials(settings.service_credentials),
    )
