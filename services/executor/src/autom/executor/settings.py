"""Settings of the executor service."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from autom.core.settings import OutboundHttpSettings
from autom.executor.domain.limits import MAX_OUTPUT_BYTES
from autom.executor.domain.policy import DEFAULT_STEP_TIMEOUT_SECONDS


def _alias(name: str) -> AliasChoices:
    # Executor-specific LLM settings read AUTOM_EXECUTOR_<NAME>; keyword construction uses name.
    return AliasChoices(f"AUTOM_EXECUTOR_{name.upper()}", name)


class ExecutorSettings(OutboundHttpSettings):
    """AUTOM_* variables the executor reads."""

    grpc_port: int = 50053
    # Runs started by event triggers carry the length of the chain that led to them; one
    # deeper than this is recorded as skipped instead, so a cycle (X -> Y -> X) stops.
    max_chain_depth: int = Field(default=5, ge=1)
    # A workspace's quota limits (kept by definitions) are re-read after this long.
    quota_cache_seconds: float = Field(default=2.0, ge=0)
    # Runs one process executes at once (each holds one fire message un-acked).
    max_in_flight: int = Field(default=200, ge=1)
    # Runs of fires handed over ahead of their time (see the scheduler's handover) held and
    # run besides those: a thousand schedules due in the same second start together.
    max_early_fires: int = Field(default=1000, ge=0)
    # A run's DB lease; a worker silent for this long loses the run to another worker.
    lease_seconds: float = Field(default=15.0, gt=0)
    # JetStream redelivers a fire not acked (nor heartbeated) within this window.
    ack_wait_seconds: float = Field(default=15.0, gt=0)
    # A fire that failed transiently (database, NATS or a peer down) comes back after a delay
    # doubling per delivery from the initial value up to the cap; it is never given up.
    retry_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=30.0, gt=0)
    # A run taken up more often than this without finishing (crash loops) fails instead.
    max_run_attempts: int = Field(default=50, ge=1)
    # A non-terminal run nobody has touched for this long gets its fire published again (its
    # message was lost); the next worker resumes it. After max_orphan_resumes such
    # re-publications the run fails with the reason.
    orphan_after_seconds: float = Field(default=120.0, gt=0)
    orphan_sweep_seconds: float = Field(default=15.0, gt=0)
    max_orphan_resumes: int = Field(default=5, ge=0)
    # A run waiting in a concurrency buffer asks again after this delay (doubling, capped).
    buffer_recheck_seconds: float = Field(default=0.2, gt=0)
    buffer_recheck_max_seconds: float = Field(default=5.0, gt=0)
    # StartRun keeps an automation's latest version this long at most; definitions events
    # drop it sooner, on any change. 0 asks definitions on every StartRun.
    start_run_cache_seconds: float = Field(default=30.0, ge=0)
    # How often local runs look for cancellation requested elsewhere.
    cancel_poll_seconds: float = Field(default=0.5, gt=0)
    # http_allow_cidrs / http_allow_hosts: see OutboundHttpSettings.
    http_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    http_default_timeout_seconds: float = Field(default=30.0, gt=0)
    http_max_redirects: int = Field(default=5, ge=0)
    # agent_task: litellm endpoint and credentials used for every call; model default.
    llm_api_base: str | None = Field(default=None, validation_alias=_alias("llm_api_base"))
    llm_api_key: SecretStr | None = Field(default=None, validation_alias=_alias("llm_api_key"))
    default_model: str = Field(
        default="openai/gpt-4o-mini", validation_alias=_alias("default_model")
    )
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    # A step's params or output above this many bytes of JSON is recorded as a marker object
    # ({"truncated": true, "size_bytes": ..., "preview": ...}) with <name>_truncated set.
    max_output_bytes: int = Field(
        default=MAX_OUTPUT_BYTES, ge=1024, validation_alias=_alias("max_output_bytes")
    )
    # The step timeout when neither the step nor execution.step_timeout sets one (wait,
    # transform and log are bounded by their own terms and are exempt).
    default_step_timeout_seconds: float = Field(
        default=DEFAULT_STEP_TIMEOUT_SECONDS,
        gt=0,
        validation_alias=_alias("default_step_timeout_seconds"),
    )
    # WatchRun is woken by run events; this re-check only bounds the delay of a missed one.
    watch_recheck_seconds: float = Field(
        default=5.0, gt=0, validation_alias=_alias("watch_recheck_seconds")
    )
    # Definition snapshots kept in memory (versions are immutable).
    definition_cache_size: int = Field(default=1024, ge=1)
