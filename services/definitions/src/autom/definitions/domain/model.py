"""The automation envelope (DESIGN §3) as pydantic models, in the JSON form people write."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STEP_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_DEFINITION_BYTES = 256 * 1024
MAX_STEPS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """How failed attempts are retried."""

    max_retries: int | None = Field(default=None, ge=0, le=20)
    backoff: Literal["none", "linear", "exponential"] | None = None
    initial_delay: str | None = None
    max_delay: str | None = None
    jitter: bool | None = None


class Trigger(_Strict):
    """When an automation fires."""

    id: str | None = Field(default=None, pattern=STEP_ID_PATTERN)
    type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] | None = None


class InputsSpec(_Strict):
    """The JSON Schema of run inputs."""

    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Step(_Strict):
    """One action of a plan."""

    id: str = Field(pattern=STEP_ID_PATTERN, max_length=64)
    action: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None
    retry: RetryPolicy | None = None
    timeout: str | None = None
    description: str | None = None


class ExecutionPolicy(_Strict):
    """Run-wide policy."""

    timeout: str | None = None
    step_timeout: str | None = None
    retry: RetryPolicy | None = None
    concurrency: Literal["allow", "skip", "buffer_one", "buffer_all", "cancel_other"] | None = None
    budget_usd: float | None = Field(default=None, ge=0)
    on_failure: list[Step] = Field(default_factory=list)


class Metadata(_Strict):
    """Tags, provenance and free-form extras (the only open object of the envelope)."""

    tags: list[str] = Field(default_factory=list)
    created_from_nl: bool = False
    draft_id: str | None = None
    extras: dict[str, Any] = Field(default_factory=dict)


class Definition(_Strict):
    """The whole envelope."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    goal: str = ""
    triggers: list[Trigger] = Field(default_factory=list)
    inputs: InputsSpec | None = None
    plan: list[Step] = Field(min_length=1)
    execution: ExecutionPolicy | None = None
    metadata: Metadata | None = None

    def trigger_ids(self) -> list[str]:
        """Each trigger's id, defaulting to `<type>_<index>`."""
        return [t.id or f"{t.type}_{i}" for i, t in enumerate(self.triggers)]

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: defaults and empty values left out."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


def definition_json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope, for clients and the drafter's prompt."""
    return Definition.model_json_schema(by_alias=True)
