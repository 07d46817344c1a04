"""OpenTelemetry tracing: off unless the standard OTEL_* variables ask for the OTLP exporter.

One trace follows a scheduled automation: the scheduler's fire span and the relay's publish
span share a trace id derived from the fire id; the publish span's W3C `traceparent` goes in
the NATS message headers, and the executor's run span (then each step, each HTTP and LLM
call) continues it. gRPC calls carry `traceparent` in their metadata the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    Tracer,
    TracerProvider,
)

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None
_configured = False
TRACEPARENT = "traceparent"


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install an OTLP-exporting provider when OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint
    is set (the exporter reads the other OTEL_* variables itself); True when tracing is on."""
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter == "none" or (not exporter and not endpoint):
        return False
    if exporter not in ("", "otlp"):
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (only otlp): no tracing", exporter)
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over our default.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes = {} if named else {SERVICE_NAME: f"autom-{service}"}
    provider = SdkTracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _configured
    _configured = True
    log.info("tracing on: OTLP exporter, service autom-%s", service)
    return True


def use_provider(provider: TracerProvider | None) -> None:
    """Send Autom's spans to `provider` (tests: an in-memory exporter); None: the global one."""
    global _provider
    _provider = provider


def enabled() -> bool:
    """Whether spans are recorded: an exporter was configured or a provider given."""
    return _configured or _provider is not None


def span(
    name: str, *, carrier: Mapping[str, str] | None = None, **kwargs: Any
) -> AbstractContextManager[Span]:
    """`tracer().start_as_current_span` for a block (a child of the trace `carrier` brings,
    when given). With tracing off and no trace coming in it makes nothing at all: the current
    span (none, or a trace passing through) stays current, as a no-op tracer would leave it.
    """
    if enabled() or (carrier is not None and TRACEPARENT in carrier):
        if carrier is not None:
            kwargs["context"] = extract(carrier)
        return tracer().start_as_current_span(name, **kwargs)
    return contextlib.nullcontext(trace.get_current_span())


def tracer() -> Tracer:
    """Autom's tracer (a no-op one unless tracing is configured)."""
    provider = _provider or trace.get_tracer_provider()
    return provider.get_tracer("autom")


def fire_parent(fire_id: str) -> Context:
    """The context every span of one fire hangs from: its trace id comes from the fire id,
    so the due loop and the relay (in any replica, at any time) join the same trace."""
    digest = hashlib.sha256(f"autom-fire:{fire_id}".encode()).digest()
    span_context = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the W3C `traceparent` (and `tracestate`) of `context` (default: current)."""
    if not enabled() and not trace.get_current_span(context).get_span_context().is_valid:
        return  # nothing to carry on
    propagate.inject(carrier, context=context)


def extract(carrier: Mapping[str, str] | None) -> Context:
    """The trace context a message's headers or a call's metadata carry (empty if none)."""
    return propagate.extract(dict(carrier or {}))
