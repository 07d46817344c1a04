"""Settings of the drafter service."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from autom.core.settings import ServiceSettings


def _env(name: str, default: Any, **kw: Any) -> Any:
    # Short field names in code (`model=`; `drafter_model=` also accepted), AUTOM_DRAFTER_*
    # in the environment. Only prefixed names are read from the environment, so a stray
    # MODEL or API_KEY variable is never picked up.
    alias = AliasChoices(f"autom_drafter_{name}", f"drafter_{name}")
    return Field(default=default, validation_alias=alias, **kw)


class DrafterSettings(ServiceSettings):
    """AUTOM_* variables the drafter reads; the model is optional so the service still starts."""

    model_config = SettingsConfigDict(populate_by_name=True)

    grpc_port: int = 50054
    # Any litellm model string, e.g. `openai/gpt-4o-mini`; unset -> drafts fail `not_configured`.
    model: str | None = _env("model", None)
    # Base URL of an OpenAI-compatible server (local models, proxies); unset -> provider default.
    api_base: str | None = _env("api_base", None)
    # Provider key; unset -> litellm reads the provider's own variable (e.g. OPENAI_API_KEY).
    api_key: SecretStr | None = _env("api_key", None)
    # Per model call.
    timeout_seconds: float = _env("timeout_seconds", 60.0, gt=0)
    max_repair_rounds: int = _env("max_repair_rounds", 2, ge=0, le=5)
    # litellm-level retries of 429/5xx/connection errors. Default none: a drafting RPC is
    # interactive, and the caller retries a failed turn by repeating its request_id.
    num_retries: int = _env("num_retries", 0, ge=0, le=10)
    temperature: float = _env("temperature", 0.0, ge=0, le=2)
    max_tokens: int = _env("max_tokens", 4096, ge=256)
    # Seconds a fetched GetDefinitionSchema answer is reused for prompts.
    schema_ttl_seconds: float = _env("schema_ttl_seconds", 60.0, ge=0)
    # Deadline of calls to the definitions and scheduler services.
    rpc_timeout_seconds: float = _env("rpc_timeout_seconds", 10.0, gt=0)
