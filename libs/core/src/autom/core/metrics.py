"""Prometheus metrics of every Autom process, and the HTTP endpoint that serves them.

The metric objects are process-wide (prometheus_client's default registry, which also
carries the `process_*` and `python_*` collectors); every name is listed in the README's
"Operating Autom" section. A process serves `/metrics` only when `metrics_port` is set.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Lags and durations from 5 ms (a fire released on time) to 10 min (a long step or catch-up).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_RPC_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How often gauges read from NATS or PostgreSQL (consumer state, outbox backlog) refresh.
SAMPLE_EVERY_S = 5.0

# ---- scheduler -----------------------------------------------------------------------------
FIRE_PUBLISH_LAG = Histogram(
    "autom_fire_publish_lag_seconds",
    "Time from a fire's scheduled instant to JetStream acknowledging its event.",
    buckets=_SECONDS,
)
FIRES = Counter(
    "autom_fires_total",
    "Fires by outcome: published (scheduler), missed (dropped by the catch-up policy, "
    "scheduler), skipped / buffered / cancelled_other (the concurrency policy, executor).",
    ["outcome"],
)

# ---- executor ------------------------------------------------------------------------------
FIRE_START_LAG = Histogram(
    "autom_fire_start_lag_seconds",
    "Time from a scheduled fire's instant to its run's first step starting.",
    buckets=_SECONDS,
)
RUNS = Counter("autom_runs_total", "Runs that reached a terminal status.", ["status"])
RUN_DURATION = Histogram(
    "autom_run_duration_seconds",
    "Wall time of a run from its start to its terminal status.",
    ["status"],
    buckets=_SECONDS,
)
STEP_DURATION = Histogram(
    "autom_step_duration_seconds",
    "Wall time of one step, all attempts included, by action and final status.",
    ["action", "status"],
    buckets=_SECONDS,
)
STEP_ATTEMPTS = Counter("autom_step_attempts_total", "Attempts of steps, by action.", ["action"])
STEP_RETRIES = Counter(
    "autom_step_retries_total",
    "Attempts of steps after a retryable failure, by action.",
    ["action"],
)

# ---- LLM calls (drafter, executor agent_task) ---------------------------------------------
LLM_CALLS = Counter(
    "autom_llm_calls_total",
    "LLM completions by caller, model and outcome (ok|error).",
    ["caller", "model", "outcome"],
)
LLM_TOKENS = Counter(
    "autom_llm_tokens_total",
    "LLM tokens by caller, model and kind (prompt|completion).",
    ["caller", "model", "kind"],
)
LLM_COST = Counter(
    "autom_llm_cost_usd_total",
    "LLM spend in US dollars by caller and model (litellm prices).",
    ["caller", "model"],
)

# ---- NATS consumers and outboxes (every service) -------------------------------------------
CONSUMER_PENDING = Gauge(
    "autom_consumer_pending_messages",
    "Messages of the stream the durable consumer has not delivered yet.",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "autom_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not acknowledged yet.",
    ["stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "autom_consumer_redelivered_messages",
    "Messages the durable consumer holds that were delivered more than once (NATS's count).",
    ["stream", "consumer"],
)
CONSUMER_REDELIVERIES = Counter(
    "autom_consumer_redeliveries_total",
    "Redelivered messages this process received (delivery count above one).",
    ["stream", "consumer"],
)
OUTBOX_BACKLOG = Gauge(
    "autom_outbox_backlog", "Outbox rows released and not yet published.", ["outbox"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "autom_outbox_oldest_age_seconds",
    "Age of the oldest released and unpublished outbox row (0 when none).",
    ["outbox"],
)

# ---- gRPC server (every service) -----------------------------------------------------------
GRPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method"]
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=_RPC_SECONDS,
)


def split_method(full_method: str) -> tuple[str, str]:
    """`/pkg.Service/Method` → (`pkg.Service`, `Method`)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.rpartition("/")
    return service or "unknown", method or full_method


# A method's series, looked up once: `labels()` validates and locks on every call, and a
# server asks for the same few series thousands of times a second.
@functools.cache
def _started(full_method: str) -> Any:
    return GRPC_STARTED.labels(*split_method(full_method))


@functools.cache
def _ended(full_method: str, code: str) -> tuple[Any, Any]:
    service, method = split_method(full_method)
    return GRPC_HANDLED.labels(service, method, code), GRPC_HANDLING.labels(service, method, code)


@contextmanager
def observe_rpc(full_method: str) -> Iterator[RpcOutcome]:
    """Count and time one RPC; the caller sets `outcome.code` before it ends."""
    _started(full_method).inc()
    outcome = RpcOutcome()
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        elapsed = time.perf_counter() - started
        handled, handling = _ended(full_method, outcome.code)
        handled.inc()
        handling.observe(elapsed)


@dataclass
class RpcOutcome:
    """The status code an RPC ended with (a gRPC `StatusCode` name)."""

    code: str = "OK"


def record_llm_call(
    caller: str,
    model: str,
    *,
    ok: bool,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: float = 0.0,
) -> None:
    """Count one LLM completion with its usage and cost."""
    LLM_CALLS.labels(caller, model, "ok" if ok else "error").inc()
    if prompt_tokens:
        LLM_TOKENS.labels(caller, model, "prompt").inc(prompt_tokens)
    if completion_tokens:
        LLM_TOKENS.labels(caller, model, "completion").inc(completion_tokens)
    if cost_usd > 0:
        LLM_COST.labels(caller, model).inc(cost_usd)


@dataclass
class MetricsServer:
    """The `/metrics` HTTP endpoint of a process (served from a thread)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port it is bound to (the configured one, or the one picked for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(host: str, port: int, *, name: str) -> MetricsServer:
    """Serve `/metrics` on host:port (port 0 picks a free one); raises when it cannot bind."""
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise RuntimeError(f"{name}: cannot bind metrics on {host}:{port} ({exc})") from exc
    started = MetricsServer(server, thread)
    log.info("%s metrics on http://%s:%d/metrics", name, host, started.port)
    return started
