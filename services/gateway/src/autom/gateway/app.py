"""The gateway's ASGI application: routes from descriptors, transcoding, docs and health."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import grpc
from google.rpc import code_pb2, status_pb2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from autom.api.definitions.v1 import definitions_service_pb2
from autom.api.drafter.v1 import drafter_service_pb2
from autom.api.executor.v1 import executor_service_pb2
from autom.api.scheduler.v1 import scheduler_service_pb2
from autom.core.auth import METHOD_PERMISSIONS
from autom.core.errors import Violation
from autom.core.logging import (
    REQUEST_ID_KEY,
    clean_request_id,
    current_request_id,
    log_context,
    new_request_id,
)
from autom.core.metrics import MetricsServer, start_metrics_server
from autom.gateway import codec, hooks
from autom.gateway.comments import documented_ranges, find_proto_root, load_comments
from autom.gateway.console import mount_console
from autom.gateway.docs import docs_html
from autom.gateway.errors import http_status, status_from_rpc_error, status_json, status_of
from autom.gateway.openapi import build_openapi
from autom.gateway.routing import Match, MethodNotAllowed, Route, Router, routes_from_files
from autom.gateway.settings import GatewaySettings
from autom.gateway.upstream import Upstream, UpstreamPool

log = logging.getLogger(__name__)

# Service key -> generated module whose file descriptor holds the service and its rules.
SERVICE_MODULES: dict[str, ModuleType] = {
    "definitions": definitions_service_pb2,
    "scheduler": scheduler_service_pb2,
    "executor": executor_service_pb2,
    "drafter": drafter_service_pb2,
}

JSON = "application/json"
NDJSON = "application/x-ndjson"
_TIMEOUT = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|S|M|H)?")
_UNITS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    "S": 1.0,
    "m": 60.0,
    "M": 60.0,
    "h": 3600.0,
    "H": 3600.0,
}


class HttpError(Exception):
    """An error the gateway answers itself, before or instead of calling upstream."""

    def __init__(
        self,
        http: int,
        status: status_pb2.Status,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status.message)
        self.http = http
        self.status = status
        self.headers = headers or {}


def _is_protected(rpc_path: str) -> bool:
    # Methods missing from the table are denied by the services; treat them as protected.
    return METHOD_PERMISSIONS.get(rpc_path, "deny") is not None


def build_routes() -> list[Route]:
    """Every google.api.http binding of the four public services."""
    files = [(key, module.DESCRIPTOR) for key, module in SERVICE_MODULES.items()]
    return routes_from_files(files, protected=_is_protected)


def _upstreams(settings: GatewaySettings) -> list[Upstream]:
    addresses = {
        "definitions": settings.definitions_addr,
        "scheduler": settings.scheduler_addr,
        "executor": settings.executor_addr,
        "drafter": settings.drafter_addr,
    }
    out = []
    for key, module in SERVICE_MODULES.items():
        (service,) = module.DESCRIPTOR.services_by_name.values()
        out.append(Upstream(key=key, address=addresses[key], service_name=service.full_name))
    return out


def error_response(
    http: int, status: status_pb2.Status, headers: dict[str, str] | None = None
) -> Response:
    """A google.rpc.Status JSON response."""
    extra = dict(headers or {})
    if http == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer realm="autom"')
    return Response(
        codec.dumps(status_json(status)), status_code=http, media_type=JSON, headers=extra
    )


def parse_timeout(headers: Any, default: float, maximum: float) -> float:
    """Deadline in seconds from X-Autom-Timeout (`30s`, `500ms`, `2m`) or Request-Timeout."""
    raw = headers.get("x-autom-timeout")
    name = "X-Autom-Timeout"
    if raw is None:
        raw, name = headers.get("request-timeout"), "Request-Timeout"
        if raw is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", raw.strip()):
            raw = "invalid"
    if raw is None:
        return default
    m = _TIMEOUT.fullmatch(raw.strip())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0
    if seconds <= 0:
        raise HttpError(
            400,
            status_of(
                code_pb2.INVALID_ARGUMENT,
                f"invalid {name} header: use e.g. 30s, 500ms, 2m or 1h",
                [Violation(name, "must be a positive duration")],
            ),
        )
    return min(seconds, maximum)


def _bearer(header: str | None) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes."""
    too_large = HttpError(
        413,
        status_of(code_pb2.RESOURCE_EXHAUSTED, f"request body exceeds {limit} bytes"),
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def is_json_media_type(header: str | None) -> bool:
    """`application/json` or `application/<x>+json`, with any parameters."""
    media = (header or "").split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def require_json_body(headers: Any, body: bytes) -> None:
    """A non-empty body must declare a JSON Content-Type (a form or text body is a 415)."""
    declared = headers.get("content-type")
    if body.strip() and not is_json_media_type(declared):
        raise HttpError(
            415,
            status_of(
                code_pb2.INVALID_ARGUMENT,
                f"unsupported Content-Type {declared or '(none)'!r}: send application/json",
                [Violation("Content-Type", "must be application/json")],
            ),
        )


def _query(scope: Scope) -> list[tuple[str, str]]:
    raw: bytes = scope.get("query_string", b"")
    try:
        return parse_qsl(
            raw.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=1000,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(
            400, status_of(code_pb2.INVALID_ARGUMENT, f"malformed query string: {exc}")
        ) from exc


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        # Some servers (httpx's ASGI transport) include the query string in raw_path.
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    path: str = scope["path"]
    return path


REQUEST_ID_HEADER = "X-Request-Id"


class Gateway:
    """ASGI app: `/openapi.json`, `/docs`, `/healthz` and one transcoded route per binding."""

    def __init__(self, settings: GatewaySettings, routes: Sequence[Route] | None = None) -> None:
        self.settings = settings
        self.routes = list(routes if routes is not None else build_routes())
        self.router = Router(self.routes)
        self.pool = UpstreamPool(_upstreams(settings), settings.grpc_tls)
        root = find_proto_root(settings.proto_dir, [Path(__file__).resolve().parent, Path.cwd()])
        if root is None:
            log.warning("no protos/ directory found: OpenAPI descriptions will be empty")
        self.comments = load_comments([root] if root else [])
        self.ranges = documented_ranges(self.comments)
        self.openapi = build_openapi(self.routes, self.comments, ranges=self.ranges)
        self._openapi_bytes = codec.dumps(self.openapi)
        self._docs = docs_html()
        self.metrics: MetricsServer | None = None
        self._special: dict[str, Callable[[Request], Any]] = {
            "/openapi.json": self._openapi_endpoint,
            "/docs": self._docs_endpoint,
            "/healthz": self._healthz,
        }
        self.console = mount_console(settings, self.pool.channel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            # No websockets here: refuse the handshake.
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        if self.console.owns(scope["path"]):
            await self.console(scope, receive, send)
            return
        request = Request(scope, receive)
        # The caller's X-Request-Id (or a new one) tags every log line of the request, goes
        # upstream as gRPC metadata and comes back on the response.
        request_id = clean_request_id(request.headers.get(REQUEST_ID_KEY)) or new_request_id()
        with log_context(request_id=request_id):
            try:
                response = await self.dispatch(request)
            except HttpError as exc:
                response = error_response(exc.http, exc.status, exc.headers)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gateway error on %s %s", request.method, scope.get("path"))
                response = error_response(500, status_of(code_pb2.INTERNAL, "internal error"))
            response.headers[REQUEST_ID_HEADER] = request_id
            await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open upstream channels and bind the routes to them; serve /metrics when set."""
        if self.settings.metrics_port is not None:
            self.metrics = start_metrics_server(
                self.settings.metrics_host, self.settings.metrics_port, name="gateway"
            )
        await self.pool.start(self.routes)
        log.info("gateway routes: %d over %d services", len(self.routes), len(self.pool.upstreams))

    async def shutdown(self) -> None:
        """Close the channels, letting in-flight calls finish within the grace."""
        await self.pool.close(self.settings.shutdown_grace_seconds)
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    async def dispatch(self, request: Request) -> Response:
        """Serve one HTTP request."""
        path = request.url.path
        special = self._special.get(path)
        if special is not None:
            if request.method not in ("GET", "HEAD"):
                raise HttpError(
                    405,
                    status_of(code_pb2.UNIMPLEMENTED, f"{request.method} is not allowed here"),
                    {"Allow": "GET, HEAD"},
                )
            response: Response = await special(request)
            return response
        raw_path = _raw_path(request.scope)
        hook_id = hooks.hook_id_of(raw_path)
        if hook_id is not None:
            return await self._hook(request, hook_id)
        try:
            match = self.router.match(request.method, raw_path)
        except MethodNotAllowed as exc:
            raise HttpError(
                405,
                status_of(
                    code_pb2.UNIMPLEMENTED,
                    f"{request.method} is not allowed on {path}; use {', '.join(exc.allowed)}",
                ),
                {"Allow": ", ".join(exc.allowed)},
            ) from exc
        except UnicodeDecodeError as exc:
            raise HttpError(
                400, status_of(code_pb2.INVALID_ARGUMENT, "the path is not valid UTF-8")
            ) from exc
        if match is None:
            raise HttpError(
                404, status_of(code_pb2.NOT_FOUND, f"no route for {request.method} {path}")
            )
        return await self.transcode(request, match)

    async def transcode(self, request: Request, match: Match) -> Response:
        """HTTP -> gRPC -> HTTP for one matched route."""
        route = match.route
        authorization = request.headers.get("authorization")
        if route.protected and not _bearer(authorization):
            # Fail before reading the body: no token, no work (and no upstream round trip).
            raise HttpError(
                401,
                status_of(
                    code_pb2.UNAUTHENTICATED,
                    "missing bearer token: send `Authorization: Bearer <token>`",
                ),
            )
        default = (
            self.settings.stream_timeout_seconds
            if route.streaming
            else self.settings.request_timeout_seconds
        )
        timeout = parse_timeout(request.headers, default, self.settings.max_timeout_seconds)
        body = await read_body(request, self.settings.max_body_bytes) if route.binding.body else b""
        require_json_body(request.headers, body)
        try:
            message = codec.decode_request(
                route, body, match.path_params, _query(request.scope), self.ranges
            )
            payload = codec.serialize(message)
        except codec.RequestError as exc:
            raise HttpError(
                400, status_of(code_pb2.INVALID_ARGUMENT, exc.message, exc.violations)
            ) from exc
        # Only the bearer token crosses over: identity comes from the token, never from
        # headers a client could forge.
        metadata: tuple[tuple[str, str], ...] = (
            (("authorization", authorization),) if authorization else ()
        )
        request_id = current_request_id()
        if request_id is not None:
            metadata = (*metadata, (REQUEST_ID_KEY, request_id))
        if route.streaming:
            return await self._stream(route, payload, timeout, metadata)
        try:
            response = await route.call(payload, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return self._rpc_error(route, exc)
        return Response(codec.dumps(self._render(route, response)), media_type=JSON)

    async def _hook(self, request: Request, hook_id: str) -> Response:
        """A webhook delivery: raw body and headers to the executor, 202 with the run id."""
        if request.method != "POST":
            raise HttpError(
                405,
                status_of(code_pb2.UNIMPLEMENTED, f"{request.method} is not allowed here"),
                {"Allow": "POST"},
            )
        if not hooks.valid_hook_id(hook_id):
            raise HttpError(404, status_of(code_pb2.NOT_FOUND, f"webhook {hook_id!r} not found"))
        timeout = parse_timeout(
            request.headers,
            self.settings.request_timeout_seconds,
            self.settings.max_timeout_seconds,
        )
        body = await read_body(request, hooks.body_limit(self.settings.max_body_bytes))
        message = hooks.request(hook_id, request.headers, _query(request.scope), body)
        try:
            reply = await hooks.unary(self.pool.channel("executor"))(message, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            status = status_from_rpc_error(exc, "executor")
            return error_response(hooks.http_of(status, http_status(status.code)), status)
        payload = {"runId": reply.run_id, "created": reply.created}
        return Response(codec.dumps(payload), status_code=202, media_type=JSON)

    def _render(self, route: Route, message: Any) -> Any:
        field = route.binding.response_body
        if field:
            return codec.to_json(message).get(message.DESCRIPTOR.fields_by_name[field].json_name)
        return codec.to_json(message)

    def _rpc_error(self, route: Route, exc: grpc.RpcError) -> Response:
        status = status_from_rpc_error(exc, route.service_key)
        return error_response(http_status(status.code), status)

    async def _stream(
        self, route: Route, payload: bytes, timeout: float, metadata: Any
    ) -> Response:
        call = route.call(payload, timeout=timeout, metadata=metadata)
        try:
            # Wait for the first message so that an immediate failure keeps its HTTP status.
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            return self._rpc_error(route, exc)
        except BaseException:
            call.cancel()
            raise

        async def lines() -> AsyncIterator[bytes]:
            try:
                message = first
                while message is not grpc.aio.EOF:
                    yield codec.dumps(self._render(route, message)) + b"\n"
                    message = await call.read()
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    status = status_from_rpc_error(exc, route.service_key)
                    yield codec.dumps({"error": status_json(status)}) + b"\n"
            finally:
                # The client went away or the stream ended: stop the upstream call either way.
                call.cancel()

        return StreamingResponse(
            lines(),
            media_type=NDJSON,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _openapi_endpoint(self, request: Request) -> Response:
        return Response(self._openapi_bytes, media_type=JSON)

    async def _docs_endpoint(self, request: Request) -> Response:
        return HTMLResponse(self._docs)

    async def _healthz(self, request: Request) -> Response:
        services = await self.pool.health(self.settings.health_timeout_seconds)
        ok = all(status == "SERVING" for status in services.values())
        body = {"status": "SERVING" if ok else "NOT_SERVING", "services": dict(services)}
        return Response(codec.dumps(body), status_code=200 if ok else 503, media_type=JSON)


def create_app(settings: GatewaySettings) -> Gateway:
    """The gateway ASGI app for the settings (channels open at lifespan startup)."""
    return Gateway(settings)
