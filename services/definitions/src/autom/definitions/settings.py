"""Settings of the definitions service."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from autom.core.auth import (
    DEFAULT_SERVICE_TOKEN_TTL,
    ServiceCredentials,
    TokenSigner,
    load_private_key,
    load_public_keys,
)
from autom.core.settings import OutboundHttpSettings


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
