"""Stand-ins for the Autom services, and a supervisor driver that runs them.

    fake_stack.py supervise           run_dev() with every service command replaced by this
    fake_stack.py serve <service>     gRPC health (or HTTP /healthz for the gateway)
    fake_stack.py migrate <service>
    fake_stack.py dev-token <service>

Knobs (environment), each naming one service: FAKE_EXIT_EARLY crashes it before it serves;
FAKE_MIGRATE_FAIL fails its migration; FAKE_MIGRATE_HANG makes its migration hang;
FAKE_IGNORE_SIGTERM makes it ignore SIGTERM. FAKE_DRAIN_SECONDS=<s> makes every service take
that long to stop after SIGTERM. FAKE_MIGRATE_BARRIER=<dir> makes each migration wait until
all four have started (so sequential migrations never finish). FAKE_REJECT_TOKENS=1 makes
the fake definitions' WhoAmI refuse every token. FAKE_ENV_DIR=<dir> records each command's
AUTOM_* environment as <dir>/<service>.<command>.json and appends a line to <dir>/mints per
dev-token run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path


def fake_command(service: str, subcommand: str | None) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), subcommand or "serve", service]


def _say(service: str, text: str, *, err: bool = False) -> None:
    print(f"fake {service} {text}", file=sys.stderr if err else sys.stdout, flush=True)


async def _serve_grpc(service: str) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1.health import aio as health_aio

    server = grpc.aio.server()
    if service == "definitions":
        server.add_generic_rpc_handlers([_whoami_handler()])
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{os.environ['AUTOM_GRPC_HOST']}:{os.environ['AUTOM_GRPC_PORT']}"
    server.add_insecure_port(address)
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    _say(service, f"listening on {address}")
    _say(service, "says hello on stderr", err=True)
    await asyncio.sleep(0.3)  # not ready yet: the supervisor must keep polling
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    _say(service, "serving")
    await _until_sigterm(service)
    _say(service, "stopping")
    await asyncio.sleep(float(os.environ.get("FAKE_DRAIN_SECONDS", "0")))
    await server.stop(0)
    _say(service, "drained")


def _whoami_handler() -> object:
    import grpc

    async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        accepted = str(metadata.get("authorization", "")).startswith("Bearer fake-token-")
        if not accepted or os.environ.get("FAKE_REJECT_TOKENS"):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "token not accepted")
        return b""

    return grpc.method_handlers_generic_handler(
        "autom.api.definitions.v1.DefinitionsService",
        {
            "WhoAmI": grpc.unary_unary_rpc_method_handler(
                whoami, request_deserializer=None, response_serializer=None
            )
        },
    )


async def _serve_http(service: str) -> None:
    polls: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        healthz = request.split()[1:2] == [b"/healthz"]
        polls.append(1)
        # Like the real gateway: 503 until its backends answer, one access-log line each.
        ok = healthz and len(polls) > 3
        status = b"200 OK" if ok else b"503 Service Unavailable" if healthz else b"404 Not Found"
        print(f'INFO: 127.0.0.1:1 - "GET /healthz HTTP/1.1" {status[:3].decode()}', flush=True)
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        )
        await writer.drain()
        writer.close()

    host, port = os.environ["AUTOM_HTTP_HOST"], int(os.environ["AUTOM_HTTP_PORT"])
    server = await asyncio.start_server(handle, host, port)
    _say(service, f"listening on http://{host}:{port}")
    _say(service, "serving")
    await _until_sigterm(service)
    _say(service, "stopping")
    server.close()
    await server.wait_closed()


async def _until_sigterm(service: str) -> None:
    stop = asyncio.Event()

    def on_sigterm() -> None:
        if os.environ.get("FAKE_IGNORE_SIGTERM") == service:
            _say(service, "ignoring SIGTERM")
        else:
            stop.set()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    await stop.wait()


def _record_env(service: str, what: str) -> None:
    directory = os.environ.get("FAKE_ENV_DIR")
    if directory:
        env = {k: v for k, v in os.environ.items() if k.startswith("AUTOM_")}
        env["PYTHONUNBUFFERED"] = os.environ.get("PYTHONUNBUFFERED", "")
        Path(directory, f"{service}.{what}.json").write_text(json.dumps(env))


def main() -> int:
    what, service = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    if what == "supervise":
        from autom.devstack.run import run_dev

        return run_dev(command=fake_command)
    _record_env(service, what)
    if what == "migrate":
        if barrier := os.environ.get("FAKE_MIGRATE_BARRIER"):
            Path(barrier, service).touch()
            deadline = time.monotonic() + 20
            while len(list(Path(barrier).iterdir())) < 4:
                if time.monotonic() > deadline:
                    _say(service, "migration waited alone")
                    return 1
                time.sleep(0.05)
        if os.environ.get("FAKE_MIGRATE_HANG") == service:
            _say(service, "migration hangs")
            time.sleep(60)
        if os.environ.get("FAKE_MIGRATE_FAIL") == service:
            _say(service, "migration boom")
            return 1
        _say(service, "migrated")
        return 0
    if what == "dev-token":
        _say(service, "minting a token", err=True)
        if directory := os.environ.get("FAKE_ENV_DIR"):
            with Path(directory, "mints").open("a") as fh:
                fh.write("minted\n")
        print("some noise\nfake-token-123\n", flush=True)
        return 0
    if os.environ.get("FAKE_EXIT_EARLY") == service:
        _say(service, "crashing")
        return 3
    asyncio.run(_serve_http(service) if service == "gateway" else _serve_grpc(service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
