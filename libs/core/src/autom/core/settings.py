"""Settings shared by every service: read once from AUTOM_* environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base settings of an Autom service; each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_prefix="AUTOM_", extra="ignore", frozen=True)

    database_url: str = "postgresql://postgres@127.0.0.1:5432/autom"
    nats_url: str = "nats://127.0.0.1:4222"
    # JetStream replicas of Autom's streams: 1 on a single node, 3 on a production cluster.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=0, ge=0, le=65535)
    # Signs and verifies bearer tokens (HS256); every service of a deployment shares it.
    auth_secret: SecretStr = Field(min_length=32)
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    definitions_addr: str = "127.0.0.1:50051"
    scheduler_addr: str = "127.0.0.1:50052"
    executor_addr: str = "127.0.0.1:50053"
    drafter_addr: str = "127.0.0.1:50054"
    db_pool_size: int = Field(default=10, ge=1)
    # Background loops (consumers, relays) that fail are restarted with backoff up to this...
    loop_backoff_max_seconds: float = Field(default=10.0, gt=0)
    # ...count as recovered (health SERVING again) after running this long...
    loop_healthy_after_seconds: float = Field(default=5.0, ge=0)
    # ...and end the process (non-zero, for the orchestrator to restart) if down this long.
    loop_give_up_seconds: float = Field(default=300.0, gt=0)
