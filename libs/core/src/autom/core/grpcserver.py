"""One way to serve gRPC: auth + error interceptor, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from nats.js.errors import NotFoundError as StreamNotFound
from opentelemetry.trace import SpanKind

from autom.core import tracing
from autom.core.auth import TokenVerifier, authorize, set_current_principal
from autom.core.bus import wait_any
from autom.core.errors import AutomError, Unavailable, internal_status, to_status_proto
from autom.core.grpctls import GrpcTls
from autom.core.logging import (
    REQUEST_ID_KEY,
    clean_request_id,
    current_request_id,
    log_context,
    new_request_id,
)
from autom.core.metrics import (
    MetricsServer,
    RpcOutcome,
    observe_rpc,
    split_method,
    start_metrics_server,
)
from autom.core.paging import configure_page_tokens
from autom.core.requests import check_request, tolerant

log = logging.getLogger(__name__)


# Services start together (make run, a rollout): for this long after a service starts a
# peer that is not up yet is expected, worth one quiet line rather than a traceback.
START_GRACE_S = 60.0


def starting_up(exc: BaseException, since: float) -> bool:
    """Whether `exc` is a peer not up yet (an owner's stream, a service) within the start-up
    grace counted from `since` (a time.monotonic() reading)."""
    if time.monotonic() - since >= START_GRACE_S:
        return False
    if isinstance(exc, StreamNotFound | Unavailable):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


Register = Callable[[grpc.aio.Server], None]
Background = Callable[[asyncio.Event], Awaitable[None]]
Cleanup = Callable[[], Awaitable[None]]
# Health name that is SERVING while the process answers at all (a liveness probe): a loop
# that is down turns readiness ("") NOT_SERVING, and the process exits if it stays down.
LIVENESS = "liveness"
EXIT_LOOP_DOWN = 70  # EX_SOFTWARE: a vital loop could not recover; the orchestrator restarts us


@dataclass(frozen=True)
class Loop:
    """A background loop the app supervises: it runs until stop, else it is restarted."""

    name: str
    run: Background
    # Finishes on its own (e.g. a start-up resync): restarted only when it raises.
    once: bool = False


@dataclass(frozen=True)
class Supervision:
    """How failed background loops are restarted, and when the process gives up."""

    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    # A restarted loop that keeps running this long counts as recovered (health SERVING).
    healthy_after_s: float = 5.0
    # A loop still failing this long after it first went down ends the process.
    give_up_after_s: float = 300.0


def as_loop(item: Loop | Background) -> Loop:
    """A Loop for a bare loop function (named after it)."""
    if isinstance(item, Loop):
        return item
    name = getattr(item, "__qualname__", None) or repr(item)
    return Loop(name=name, run=item)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, outcome: RpcOutcome
) -> None:
    if isinstance(exc, NotImplementedError):
        # The generated base servicer raises this for RPCs a service does not implement yet.
        outcome.code = grpc.StatusCode.UNIMPLEMENTED.name
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not implemented")
    if isinstance(exc, AutomError):
        status = rpc_status.to_status(to_status_proto(exc))
        if exc.code == grpc.StatusCode.INTERNAL:
            log.error("internal error: %s", exc.message)
    else:
        log.exception("unhandled exception in RPC", exc_info=exc)
        status = rpc_status.to_status(internal_status())
    outcome.code = status.code.name
    await context.abort(status.code, status.details, status.trailing_metadata)


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The code a handler ended its call with (it aborted itself or set one)."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    # grpc.aio may hand back the numeric code.
    names = {known.value[0]: str(known.name) for known in grpc.StatusCode}
    return names.get(code, "UNKNOWN")


@contextlib.asynccontextmanager
async def _call(
    method: str,
    metadata: dict[str, str],
    verifier: TokenVerifier,
    context: grpc.aio.ServicerContext[Any, Any],
    fallback: object = None,
) -> AsyncIterator[None]:
    """One RPC: its request id on every log line, counted and timed, authorized, errors mapped.

    The request id is the caller's `x-request-id` when well-formed, else the request's own
    `request_id` field (its idempotency key, `fallback`), else a new one; logs, outgoing
    calls and the audit entries the call records all read this one id.
    """
    request_id = (
        clean_request_id(metadata.get(REQUEST_ID_KEY))
        or clean_request_id(fallback if isinstance(fallback, str) else None)
        or new_request_id()
    )
    service, name = split_method(method)
    span = tracing.span(
        method.lstrip("/"),
        carrier=metadata,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        record_exception=False,
        set_status_on_exception=False,
    )
    with log_context(request_id=request_id), observe_rpc(method) as outcome, span as current:
        try:
            set_current_principal(authorize(method, metadata, verifier))
            yield
            outcome.code = _code_name(context)
        except asyncio.CancelledError:
            outcome.code = grpc.StatusCode.CANCELLED.name
            raise
        except grpc.aio.AbortError:
            if outcome.code == grpc.StatusCode.OK.name:
                outcome.code = _code_name(context)
            raise
        except Exception as exc:
            await _abort(context, exc, outcome)
        finally:
            current.set_attribute("rpc.grpc.status_code", outcome.code)


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream whose every message passes the same checks as a unary request."""
    async for request in requests:
        check_request(request)
        yield request


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call of every shape against the central table; maps errors.

    Every call is also counted and timed per method and code (`grpc_server_*` metrics) and
    logs under its `x-request-id` (the caller's, or a new one).
    """

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        verifier = self._verifier
        codecs = {
            # Bytes that are not valid UTF-8 become INVALID_ARGUMENT, not UNKNOWN.
            "request_deserializer": tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        # Requests are authorized before the servicer sees them, whatever the RPC shape; a
        # handler of a shape not wrapped here would run unauthenticated, so it is refused.
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                fallback = getattr(request, "request_id", "")
                async with _call(method, metadata, verifier, context, fallback):
                    check_request(request)
                    return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **codecs)
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
            ) -> Any:
                async with _call(method, metadata, verifier, context):
                    return await inner_su(_checked(requests), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **codecs)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                fallback = getattr(request, "request_id", "")
                async with _call(method, metadata, verifier, context, fallback):
                    check_request(request)
                    async for item in inner_us(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(unary_stream, **codecs)
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                async with _call(method, metadata, verifier, context):
                    async for item in inner_ss(_checked(requests), context):
                        yield item

            return grpc.stream_stream_rpc_method_handler(stream_stream, **codecs)
        log.error("refusing %s: handler of an unknown shape", method)
        return None


@dataclass
class GrpcApp:
    """A service's server and its supervised background loops, started and stopped as one.

    Health is SERVING only while every loop runs: a loop that raises (or returns before
    stop) is restarted with capped exponential backoff and health is NOT_SERVING until it
    has run for `supervision.healthy_after_s`; if it is still down after
    `supervision.give_up_after_s`, the app stops itself and `exit_code` is set.
    """

    name: str
    verifier: TokenVerifier
    service_names: Sequence[str]
    register: Sequence[Register]
    host: str = "127.0.0.1"
    port: int = 0
    grace_seconds: float = 10.0
    background: Sequence[Loop | Background] = ()
    cleanup: Sequence[Cleanup] = ()
    supervision: Supervision = field(default_factory=Supervision)
    # Prometheus `/metrics` endpoint: None serves none, 0 picks a free port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # Keys page tokens; replicas of a service share it. None: a random key per process.
    page_token_key: bytes | None = None
    # TLS when it holds a server certificate; plaintext otherwise.
    tls: GrpcTls | None = None
    bound_port: int = 0
    metrics_server: MetricsServer | None = None
    exit_code: int | None = None
    _server: grpc.aio.Server | None = None
    _health: health.aio.HealthServicer | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    _down: set[Loop] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)

    @property
    def address(self) -> str:
        """host:port the server is bound to."""
        return f"{self.host}:{self.bound_port}"

    @property
    def failed(self) -> asyncio.Event:
        """Set when a loop could not recover within the bound (then `exit_code` is set)."""
        return self._failed

    async def start(self) -> None:
        """Bind, register, mark SERVING, then start the background loops."""
        self._started = time.monotonic()
        if self.page_token_key is not None:
            configure_page_tokens(self.page_token_key)
        server = grpc.aio.server(
            interceptors=[ServerInterceptor(self.verifier)],
            options=[("grpc.so_reuseport", 0)],
        )
        for register in self.register:
            register(server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        credentials = self.tls.server_credentials() if self.tls is not None else None
        try:
            address = f"{self.host}:{self.port}"
            if credentials is None:
                self.bound_port = server.add_insecure_port(address)
            else:
                self.bound_port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{self.name}: cannot bind {self.host}:{self.port} (already in use?)"
            ) from exc
        if self.metrics_port is not None:
            self.metrics_server = start_metrics_server(
                self.metrics_host, self.metrics_port, name=self.name
            )
        try:
            await server.start()
        except BaseException:
            self._close_metrics()
            raise
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        for loop in map(as_loop, self.background):
            self._tasks.append(asyncio.create_task(self._supervise(loop), name=loop.name))
        log.info("%s serving on %s", self.name, self.address)

    def _close_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        if self._health is None:
            return
        for svc in ["", *self.service_names]:
            await self._health.set(svc, status)

    async def _mark_down(self, loop: Loop) -> None:
        if not self._down:
            await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._down.add(loop)

    async def _mark_up(self, loop: Loop) -> None:
        self._down.discard(loop)
        if not self._down and not self._stop.is_set():
            log.info("%s: loop %s recovered; serving", self.name, loop.name)
            await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _supervise(self, loop: Loop) -> None:
        """Run `loop` until stop, restarting it with capped exponential backoff."""
        sup = self.supervision
        failures = 0
        down_since: float | None = None
        while not self._stop.is_set():
            task: asyncio.Future[None] = asyncio.ensure_future(loop.run(self._stop))
            try:
                if down_since is not None:
                    done, _ = await asyncio.wait({task}, timeout=sup.healthy_after_s)
                    if not done:
                        failures, down_since = 0, None
                        await self._mark_up(loop)
                await task
                error: BaseException | None = None
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception as exc:
                error = exc
            if self._stop.is_set():
                return
            if error is None and loop.once:
                if down_since is not None:
                    await self._mark_up(loop)
                return
            if error is not None and starting_up(error, self._started):
                log.info(
                    "%s: loop %s waits for a peer still starting (%s)", self.name, loop.name, error
                )
            elif error is not None:
                log.error("%s: loop %s crashed", self.name, loop.name, exc_info=error)
            else:
                log.error("%s: loop %s returned before stop", self.name, loop.name)
            now = time.monotonic()
            if down_since is None:
                down_since = now
                await self._mark_down(loop)
            failures += 1
            left = down_since + sup.give_up_after_s - now
            if left <= 0:
                log.critical(
                    "%s: loop %s did not recover within %g s; exiting",
                    self.name,
                    loop.name,
                    sup.give_up_after_s,
                )
                self.exit_code = EXIT_LOOP_DOWN
                self._failed.set()
                return
            delay = min(sup.backoff_max_s, sup.backoff_initial_s * 2 ** (failures - 1), left)
            await wait_any(self._stop, None, delay)

    async def stop(self) -> None:
        """NOT_SERVING -> drain RPCs within the grace -> stop loops -> cleanup."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.grace_seconds)
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for fn in self.cleanup:
            try:
                await fn()
            except Exception:
                log.exception("%s: cleanup failed", self.name)
        self._close_metrics()
        log.info("%s stopped", self.name)

    async def wait_for_termination(self) -> None:
        """Block until SIGTERM or SIGINT (or a loop gave up), then stop."""
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled.set)
        waiters = [
            asyncio.ensure_future(signalled.wait()),
            asyncio.ensure_future(self._failed.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if signalled.is_set():
            log.info("%s: shutdown requested", self.name)
        await self.stop()


async def serve(app: GrpcApp) -> None:
    """Start an app and serve until a signal asks it to stop; exits non-zero if a loop gave up."""
    await app.start()
    # What start-up allocated (modules, the app's wiring) lives as long as the process: kept
    # out of the collector, a full collection walks only what the work allocates (a full
    # pass over the imports stalled the loop ~0.1 s while a thousand runs started at once).
    gc.freeze()
    await app.wait_for_termination()
    if app.exit_code is not None:
        raise SystemExit(app.exit_code)


class TokenProvider(Protocol):
    """Something that hands out a currently valid bearer token (e.g. a refreshed one)."""

    async def token(self) -> str:
        """A token valid for the next call."""
        ...


Credential = str | TokenProvider


async def _with_bearer(
    details: grpc.aio.ClientCallDetails, credential: Credential
) -> grpc.aio.ClientCallDetails:
    metadata = list(details.metadata or [])
    if not any(k == "authorization" for k, _ in metadata):
        token = credential if isinstance(credential, str) else await credential.token()
        metadata.append(("authorization", f"Bearer {token}"))
    # A call made while handling a request carries that request's id and trace onward.
    request_id = current_request_id()
    if request_id is not None and not any(k == REQUEST_ID_KEY for k, _ in metadata):
        metadata.append((REQUEST_ID_KEY, request_id))
    carrier: dict[str, str] = {}
    tracing.inject(carrier)
    metadata.extend((k, v) for k, v in carrier.items() if not any(k == m for m, _ in metadata))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# grpc.aio files an interceptor under one call type only (if/elif on its base classes), so
# unary and streaming calls each need their own class.
class BearerAuth(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to unary calls that carry none."""

    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await _with_bearer(details, self._credential), request)


class BearerAuthStream(grpc.aio.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to server-streaming calls that carry none."""

    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await _with_bearer(details, self._credential), request)


def channel(
    address: str, token: Credential | None = None, tls: GrpcTls | None = None
) -> grpc.aio.Channel:
    """A channel to another service (TLS when `tls` says so) that acts as `token` by default.

    `token` is a bearer token, or a provider asked before each call (a refreshed one).
    """
    interceptors: list[Any] | None = [BearerAuth(token), BearerAuthStream(token)] if token else None
    return (tls or GrpcTls()).aio_channel(address, interceptors=interceptors)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata that acts as `token` (e.g. forwarding the caller's identity)."""
    return (("authorization", f"Bearer {token}"),)
