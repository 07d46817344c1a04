"""Supervisor core of `make run`: start the stack's processes in order, watch, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import shlex
import signal
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autom.devstack._proc import child_options, signal_group
from autom.devstack.config import read_dev_token, write_dev_token
from autom.devstack.nats import EmbeddedNats
from autom.devstack.output import PrefixPrinter
from autom.devstack.postgres import EmbeddedPostgres

logger = logging.getLogger(__name__)

# SIGHUP too: a closed terminal should stop the stack cleanly, not via parent-death signals.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_REPEAT_SIGNAL_DEBOUNCE = 0.5
_WHOAMI = "/autom.api.definitions.v1.DefinitionsService/WhoAmI"


@dataclass(frozen=True)
class GrpcHealth:
    """Ready when grpc.health.v1 reports SERVING for the overall service ("")."""

    address: str


@dataclass(frozen=True)
class HttpHealth:
    """Ready when GET `url` answers 200."""

    url: str


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One long-running child: how to migrate it, run it and tell that it is ready."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    health: GrpcHealth | HttpHealth
    migrate: Sequence[str] | None = None
    at_head: Callable[[], bool] | None = None
    """Cheap check that makes `migrate` unnecessary (blocking; run in a thread)."""
    stop_timeout: float | None = None
    """Its own drain deadline after SIGTERM; None: the supervisor's default."""
    startup_noise: Callable[[str], bool] | None = None
    """Output lines to hide until it is ready (the supervisor's own health polls)."""


class StartupError(RuntimeError):
    """The stack could not be brought up."""


class _Child:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, pump: asyncio.Task[None]):
        self.name = name
        self.proc = proc
        self.pump = pump
        self.exited: asyncio.Task[int] = asyncio.create_task(proc.wait())

    @property
    def running(self) -> bool:
        return not self.exited.done()

    @property
    def code(self) -> int | None:
        return self.exited.result() if self.exited.done() else None


class Supervisor:
    """Starts PostgreSQL, NATS, migrations and `services` (in order); stops them in reverse.

    Every process is ours and tied to us (own process group, parent-death signal), so
    nothing outlives the supervisor. Services are never restarted: one dying stops all.
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        printer: PrefixPrinter,
        postgres: EmbeddedPostgres | None = None,
        databases: Sequence[str] = (),
        nats: EmbeddedNats | None = None,
        dev_token: Sequence[str] | None = None,
        dev_token_env: Mapping[str, str] | None = None,
        banner: Callable[[str | None, str], str] | None = None,
        dev_token_file: Path | None = None,
        whoami_address: str | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        migrate_timeout: float = 300.0,
        stop_order: Sequence[str] | None = None,
    ) -> None:
        self._services = list(services)
        self._printer = printer
        self._postgres = postgres
        self._databases = list(databases)
        self._nats = nats
        self._dev_token = dev_token
        self._dev_token_env = dev_token_env
        self._banner = banner
        self._dev_token_file = dev_token_file
        self._whoami_address = whoami_address
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._migrate_timeout = migrate_timeout
        # Dependents first, so nothing loses a dependency while it still drains.
        self._stop_order = (
            list(stop_order) if stop_order is not None else [s.name for s in self._services][::-1]
        )
        self._children: list[_Child] = []
        self._ready: set[str] = set()
        self._stop_requested: asyncio.Event | None = None
        self._stop_signal_at = 0.0
        for spec in self._services:
            printer.register(spec.name)

    async def run(self) -> int:
        """Run until a signal (exit 0) or a failure (exit 1); always stop everything."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            return await self._run()
        finally:
            try:
                await self._shutdown()
            finally:
                for sig in _STOP_SIGNALS:
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        assert self._stop_requested is not None
        now = time.monotonic()
        if self._stop_requested.is_set():
            # One Ctrl-C can arrive twice (terminal to the group, plus a wrapper like
            # `uv run` or `timeout` forwarding it); only a later one means "hurry".
            if now - self._stop_signal_at < _REPEAT_SIGNAL_DEBOUNCE:
                return
            logger.warning("%s again: killing everything now", sig.name)
            for child in self._children:
                signal_group(child.proc.pid, signal.SIGKILL)
            return
        logger.info("%s received: stopping", sig.name)
        self._stop_signal_at = now
        self._stop_requested.set()

    async def _run(self) -> int:
        assert self._stop_requested is not None
        work = asyncio.create_task(self._start_and_watch())
        stop = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return 0
        try:
            return work.result()
        except (StartupError, OSError, RuntimeError) as exc:
            logger.error("%s", exc)
            return 1

    async def _start_and_watch(self) -> int:
        self._start_infra()
        await self._migrate_all()
        for spec in self._services:
            await self._start(spec)
        await self._wait_ready()
        token, note = await self._token() if self._dev_token is not None else (None, "")
        if self._banner is not None:
            self._printer.raw(self._banner(token, note))
        return await self._watch()

    def _start_infra(self) -> None:
        # Blocking on purpose: forking from the loop's (main) thread keeps PDEATHSIG armed.
        if self._postgres is not None:
            logger.info(
                "starting PostgreSQL on %s:%d (data %s)",
                self._postgres.host,
                self._postgres.port,
                self._postgres.data_dir,
            )
            self._postgres.start()
            for name in self._databases:
                self._postgres.create_database(name)
        if self._nats is not None:
            logger.info(
                "starting nats-server on %s:%d (store %s)",
                self._nats.host,
                self._nats.port,
                self._nats.store_dir,
            )
            self._nats.start()

    async def _spawn(
        self, argv: Sequence[str], env: Mapping[str, str], *, merge_stderr: bool = True
    ) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
                env=dict(env),
                **child_options(signal.SIGTERM),
            )
        except OSError as exc:
            raise StartupError(f"cannot run `{shlex.join(argv)}`: {exc}") from exc

    async def _pump(
        self,
        name: str,
        stream: asyncio.StreamReader | None,
        noise: Callable[[str], bool] | None = None,
    ) -> None:
        if stream is None:
            return

        def emit(raw: bytes) -> None:
            line = raw.decode(errors="replace").rstrip("\r")
            if noise is not None and name not in self._ready and noise(line):
                return
            self._printer.line(name, line)

        pending = b""
        while chunk := await stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                emit(line)
        if pending:
            emit(pending)

    async def _migrate_all(self) -> None:
        # Each service owns its own schema, so their migrations cannot interfere.
        tasks = [
            asyncio.create_task(self._migrate(spec, spec.migrate))
            for spec in self._services
            if spec.migrate is not None
        ]
        if not tasks:
            return
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if (exc := task.exception()) is not None:
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _migrate(self, spec: ServiceSpec, argv: Sequence[str]) -> None:
        if spec.at_head is not None and await asyncio.to_thread(spec.at_head):
            logger.info("%s schema is up to date", spec.name)
            return
        logger.info("migrating %s", spec.name)
        proc = await self._spawn(argv, spec.env)
        pump = asyncio.create_task(self._pump(spec.name, proc.stdout))
        try:
            code = await asyncio.wait_for(proc.wait(), self._migrate_timeout)
        except TimeoutError:
            raise StartupError(
                f"{spec.name} migration (`{shlex.join(argv)}`) did not finish within "
                f"{self._migrate_timeout:.0f} s; its output is above"
            ) from None
        finally:
            await _reap(proc, pump)
        if code != 0:
            raise StartupError(
                f"{spec.name} migration failed: `{shlex.join(argv)}` exited with code {code}; "
                "its output is above"
            )

    async def _start(self, spec: ServiceSpec) -> None:
        logger.info("starting %s: %s", spec.name, shlex.join(spec.command))
        proc = await self._spawn(spec.command, spec.env)
        pump = asyncio.create_task(self._pump(spec.name, proc.stdout, spec.startup_noise))
        self._children.append(_Child(spec.name, proc, pump))

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout
        waiting: dict[asyncio.Task[Any], ServiceSpec] = {
            asyncio.create_task(_until_healthy(spec.health)): spec for spec in self._services
        }
        exits: dict[asyncio.Task[Any], _Child] = {child.exited: child for child in self._children}
        try:
            while waiting:
                done, _ = await asyncio.wait(
                    [*waiting, *exits],
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    if task in exits:
                        child = exits[task]
                        raise StartupError(
                            f"{child.name} exited with code {child.code} before it was ready; "
                            "its output is above"
                        )
                if not done:
                    names = ", ".join(spec.name for spec in waiting.values())
                    raise StartupError(
                        f"not ready within {self._ready_timeout:.0f} s: {names} "
                        "(gRPC health not SERVING / GET /healthz not 200)"
                    )
                for task in done:
                    name = waiting.pop(task).name
                    self._ready.add(name)
                    logger.info("%s is ready", name)
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _token(self) -> tuple[str | None, str]:
        """The dev token and where it came from; reuses the stored one while it is accepted."""
        path = self._dev_token_file
        stored = read_dev_token(path) if path is not None else None
        if stored is not None and path is not None:
            problem = await self._rejection(stored)
            if problem is None:
                return stored, f"reused from {path}"
            logger.info(
                "the dev token in %s is no longer accepted (%s); minting a new one", path, problem
            )
        token = await self._mint_token()
        if token is None or path is None:
            return token, "new"
        write_dev_token(path, token)
        return token, f"new, kept in {path} for the next runs"

    async def _rejection(self, token: str) -> str | None:
        """Why definitions refuses `token` (WhoAmI), or None when it is accepted."""
        if self._whoami_address is None:
            return "no address to check it against"
        import grpc

        async with grpc.aio.insecure_channel(self._whoami_address) as channel:
            whoami = channel.unary_unary(
                _WHOAMI,
                request_serializer=lambda _: b"",  # WhoAmIRequest has no fields
                response_deserializer=lambda raw: raw,
            )
            try:
                await whoami(None, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
            except grpc.aio.AioRpcError as exc:
                return f"{exc.code().name}: {exc.details()}"
        return None

    async def _mint_token(self) -> str | None:
        assert self._dev_token is not None
        argv = self._dev_token
        env = self._dev_token_env if self._dev_token_env is not None else {}
        proc = await self._spawn(argv, env, merge_stderr=False)
        pump = asyncio.create_task(self._pump("dev-token", proc.stderr))
        try:
            assert proc.stdout is not None
            out = await asyncio.wait_for(proc.stdout.read(), 60)
            code = await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            logger.error("no dev token: `%s` did not finish in time", shlex.join(argv))
            return None
        finally:
            await _reap(proc, pump)
        lines = [line.strip() for line in out.decode(errors="replace").splitlines()]
        token = next((line for line in reversed(lines) if line), None)
        if code != 0 or token is None:
            logger.error("no dev token: `%s` exited with code %s", shlex.join(argv), code)
            return None
        return token

    async def _watch(self) -> int:
        infra = asyncio.create_task(self._watch_infra())
        exits: dict[asyncio.Task[Any], _Child] = {child.exited: child for child in self._children}
        try:
            done, _ = await asyncio.wait([*exits, infra], return_when=asyncio.FIRST_COMPLETED)
        finally:
            infra.cancel()
        for task in done:
            if task in exits:
                child = exits[task]
                logger.error(
                    "%s exited unexpectedly with code %s; stopping everything",
                    child.name,
                    child.code,
                )
        return 1

    async def _watch_infra(self) -> None:
        while True:
            for name, server in (("PostgreSQL", self._postgres), ("nats-server", self._nats)):
                if server is not None and (code := server.poll()) is not None:
                    logger.error(
                        "%s exited unexpectedly with code %s; stopping everything", name, code
                    )
                    return
            await asyncio.sleep(0.5)

    def _stop_sequence(self) -> list[_Child]:
        rank = {name: index for index, name in enumerate(self._stop_order)}
        last = len(rank)
        # Unknown names (none today) go last, in reverse start order.
        return sorted(reversed(self._children), key=lambda child: rank.get(child.name, last))

    def _stop_timeout_of(self, name: str) -> float:
        spec = next((s for s in self._services if s.name == name), None)
        if spec is not None and spec.stop_timeout is not None:
            return spec.stop_timeout
        return self._stop_timeout

    async def _shutdown(self) -> None:
        for child in self._stop_sequence():
            # Each service gets its whole drain deadline from its own SIGTERM, not a share.
            timeout = self._stop_timeout_of(child.name)
            if child.running:
                logger.info("stopping %s (up to %.0f s to drain)", child.name, timeout)
                signal_group(child.proc.pid, signal.SIGTERM)
                await asyncio.wait({child.exited}, timeout=timeout)
            if child.running:
                logger.warning("%s did not stop within %.0f s; killing it", child.name, timeout)
                signal_group(child.proc.pid, signal.SIGKILL)
                await asyncio.wait({child.exited}, timeout=5)
            # Whatever the service left behind in its process group goes too.
            signal_group(child.proc.pid, signal.SIGKILL)
            await asyncio.wait({child.pump}, timeout=2)
            child.pump.cancel()
        for child in self._children:
            for task in (child.exited, child.pump):
                if not task.done():
                    task.cancel()
            await asyncio.gather(child.exited, child.pump, return_exceptions=True)
        self._children.clear()
        if self._nats is not None and self._nats.pid is not None:
            logger.info("stopping nats-server")
            self._nats.stop()
        if self._postgres is not None and self._postgres.pid is not None:
            logger.info("stopping PostgreSQL")
            self._postgres.stop()


async def _reap(proc: asyncio.subprocess.Process, pump: asyncio.Task[None]) -> None:
    """Make sure a one-off child and its output reader are finished."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
    await asyncio.wait({pump}, timeout=2)
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)


async def _until_healthy(health: GrpcHealth | HttpHealth) -> None:
    if isinstance(health, GrpcHealth):
        await _until_grpc_serving(health.address)
    else:
        await _until_http_ok(health.url)


async def _until_grpc_serving(address: str) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        while True:
            try:
                response = await stub.Check(request, timeout=1.0)
            except grpc.aio.AioRpcError:
                pass
            else:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)


def _http_ok(url: str) -> bool:
    # No proxies: the gateway is local and a configured HTTP_PROXY would intercept it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (OSError, http.client.HTTPException):
        return False


async def _until_http_ok(url: str) -> None:
    while True:
        if await asyncio.to_thread(_http_ok, url):
            return
        await asyncio.sleep(0.1)
