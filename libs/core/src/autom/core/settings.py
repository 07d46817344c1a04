"""Settings shared by every service: read once from AUTOM_* environment variables."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autom.core.grpctls import GrpcTls
from autom.core.netpolicy import Policy

_DATABASE_SCHEMES = ("postgresql", "postgresql+asyncpg", "postgres")
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _check_url(env: str, value: str, schemes: tuple[str, ...]) -> str:
    """Fail at start, naming the variable, when a URL cannot be what it is set for."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"{env} is not a URL: {exc}") from None
    if parts.scheme not in schemes or not host:
        raise ValueError(
            f"{env} is not a {schemes[0]} URL "
            f"(expected {schemes[0]}://host[:port]..., scheme one of {', '.join(schemes)})"
        )
    return value


def legacy_secret(data: Any) -> str | None:
    """The legacy AUTOM_AUTH_SECRET in raw settings data (a before-validator's input)."""
    secret = data.get("auth_secret") if isinstance(data, dict) else None
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return str(secret) if secret else None


class CommonSettings(BaseSettings):
    """Settings every Autom process reads, keys excluded (the gateway holds none)."""

    # An exported but empty variable means unset (as `make run` treats it), never "".
    model_config = SettingsConfigDict(
        env_prefix="AUTOM_",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
        # Values can hold passwords (database URLs) and keys: errors name the field only.
        hide_input_in_errors=True,
    )

    database_url: str = "postgresql://postgres@127.0.0.1:5432/autom"
    nats_url: str = "nats://127.0.0.1:4222"
    # This process's NATS user (autom.core.natsauth); credentials in the URL work too.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    # JetStream replicas of Autom's streams: 1 on a single node, 3 on a production cluster.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    # How often a consumer looks at its stop signal and its open pull requests; a stopping
    # consumer first handles what was already delivered (not left to the ack wait).
    nats_fetch_timeout_seconds: float = Field(default=0.5, gt=0)
    grpc_host: str = "127.0.0.1"
    # AUTOM_GRPC_TLS_*: TLS of this process's gRPC server and of its channels to the others.
    grpc_tls: GrpcTls = Field(default_factory=GrpcTls)
    grpc_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    definitions_addr: str = "127.0.0.1:50051"
    scheduler_addr: str = "127.0.0.1:50052"
    executor_addr: str = "127.0.0.1:50053"
    drafter_addr: str = "127.0.0.1:50054"
    db_pool_size: int = Field(default=10, ge=1)
    # Prometheus `/metrics` over HTTP: off unless a port is set (0 picks a free one).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _check_url("AUTOM_DATABASE_URL", value, _DATABASE_SCHEMES)

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        # A cluster is a comma-separated list of servers; each must be a URL.
        for server in value.split(","):
            server = server.strip()
            # nats-py reads a bare `host[:port]` as nats://host[:port].
            _check_url(
                "AUTOM_NATS_URL", server if "://" in server else f"nats://{server}", _NATS_SCHEMES
            )
        return value


class ServiceSettings(CommonSettings):
    """Base settings of an Autom gRPC service; each service subclasses it with its own fields."""

    # Ed25519 public keys that verify bearer tokens (base64url, comma-separated, newest
    # first; several while the signing key rotates). Public: a service can verify, not sign.
    auth_public_keys: str = Field(min_length=1)
    # This service's bootstrap credential (`svc.<service>.<secret>`), exchanged with the
    # definitions service for short-lived service tokens (scheduler and executor need one).
    service_credential: SecretStr | None = None
    # Keys the opaque page tokens (replicas of a service must share it); unset: random.
    page_token_key: SecretStr | None = Field(default=None, min_length=32)
    # Legacy: one secret every service shared (earlier releases); the keys above are derived
    # from it when they are not set (autom.core.auth.LEGACY_SECRET_WARNING says the cost).
    auth_secret: SecretStr | None = None

    # Background loops (consumers, relays) that fail are restarted with backoff up to this...
    loop_backoff_max_seconds: float = Field(default=10.0, gt=0)
    # ...count as recovered (health SERVING again) after running this long...
    loop_healthy_after_seconds: float = Field(default=5.0, ge=0)
    # ...and end the process (non-zero, for the orchestrator to restart) if down this long.
    loop_give_up_seconds: float = Field(default=300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_secret(cls, data: Any) -> Any:
        secret = legacy_secret(data)
        if secret and not data.get("auth_public_keys"):
            from autom.core.auth import legacy_private_key, load_private_key, public_key_text

            key = load_private_key(legacy_private_key(secret))
            data = {**data, "auth_public_keys": public_key_text(key)}
        return data

    @field_validator("auth_public_keys")
    @classmethod
    def _public_keys(cls, value: str) -> str:
        from autom.core.auth import load_public_keys

        try:
            load_public_keys(value)
        except ValueError as exc:
            raise ValueError(f"AUTOM_AUTH_PUBLIC_KEYS: {exc}") from None
        return value

    @field_validator("service_credential")
    @classmethod
    def _credential(cls, value: SecretStr | None) -> SecretStr | None:
        from autom.core.auth import CREDENTIAL_PREFIX

        if value is None:
            return value
        text = value.get_secret_value()
        _, dot, secret = text.removeprefix(CREDENTIAL_PREFIX).partition(".")
        if not text.startswith(CREDENTIAL_PREFIX) or not dot or len(secret) < 32:
            raise ValueError(
                f"AUTOM_SERVICE_CREDENTIAL must read {CREDENTIAL_PREFIX}<service>.<32+ characters>"
                " (autom-definitions service-credential <service> makes one)"
            )
        return value


class OutboundHttpSettings(ServiceSettings):
    """The http_request allow-list: the executor enforces it, definitions validates with it."""

    # Destinations http_request may reach although they are private/loopback/link-local.
    # Comma-separated, e.g. AUTOM_HTTP_ALLOW_CIDRS="127.0.0.0/8,::1/128".
    http_allow_cidrs: str = ""
    http_allow_hosts: str = ""
    # How long an MCP server's tool list is reused before it is listed again.
    mcp_tools_ttl_seconds: float = Field(default=300.0, ge=0)

    def allow_cidrs(self) -> list[str]:
        """The CIDR allow-list as a list."""
        return [c.strip() for c in self.http_allow_cidrs.split(",") if c.strip()]

    def allow_hosts(self) -> list[str]:
        """The host allow-list as a list (lower case)."""
        return [h.strip().lower() for h in self.http_allow_hosts.split(",") if h.strip()]

    def network_policy(self) -> Policy:
        """The SSRF policy these settings make (a malformed CIDR fails fast)."""
        return Policy.from_lists(self.allow_cidrs(), self.allow_hosts())
