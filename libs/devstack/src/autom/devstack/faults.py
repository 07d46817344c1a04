"""A stack for fault tests: its own PostgreSQL and NATS, and services as real processes that
a test can kill (-9), stop (SIGSTOP) and restart, the servers included.

NATS can be a loopback JetStream cluster (`nats_nodes=3`, streams replicated on every node)
and a service can run as several replicas (`replicas={"executor": 3}`: instances
`executor`, `executor-2`, `executor-3`, each on its own gRPC port; the other services and
the test's clients talk to the first).

Built from the same pieces as `make run` (ports, environments, commands, migrations, health
checks), with fixed loopback ports so a restarted process comes back where clients look for
it. Start it from the main thread: children are tied to the thread that forks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from secrets import token_hex
from typing import IO

import nats
import nats.errors

from autom.core.natsauth import ADMIN_USER, authorization_conf
from autom.devstack._proc import child_options, signal_group
from autom.devstack.config import DevConfig, load_dev_secrets
from autom.devstack.nats import EmbeddedNats, NatsCluster, nats_passwords, with_credentials
from autom.devstack.ports import free_port
from autom.devstack.postgres import EmbeddedPostgres
from autom.devstack.run import (
    DATABASE,
    EMBEDDED_HOST,
    build_services,
    database_url,
    nats_url,
    python_module_command,
    service_envs,
)
from autom.devstack.supervisor import GrpcHealth, ServiceSpec, _until_healthy

logger = logging.getLogger(__name__)

DEFAULT_SERVICES = ("definitions", "scheduler", "executor")


class FaultStackError(RuntimeError):
    """A process of the fault stack could not be brought up."""


class _Service:
    """One service's spec, its current process and its log file (kept across restarts)."""

    def __init__(self, spec: ServiceSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class FaultStack:
    """PostgreSQL (fsync on), nats-server (file store; one node or a cluster) and services,
    each killable."""

    def __init__(
        self,
        root: Path,
        *,
        signing_key: str,
        services: Sequence[str] = DEFAULT_SERVICES,
        env: Mapping[str, Mapping[str, str]] | None = None,
        ready_timeout: float = 120.0,
        nats_nodes: int = 1,
        replicas: Mapping[str, int] | None = None,
    ) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        client_ports = [free_port() for _ in range(nats_nodes)]
        cluster_url = None
        if nats_nodes > 1:
            # Every node's URL: a process (re)starting while one node is down finds another.
            cluster_url = ",".join(f"nats://{EMBEDDED_HOST}:{port}" for port in client_ports)
        self.config = DevConfig(
            home=self.root,
            host=EMBEDDED_HOST,
            pg_port=free_port(),
            nats_url=cluster_url,
            nats_port=client_ports[0],
            definitions_port=free_port(),
            scheduler_port=free_port(),
            executor_port=free_port(),
            drafter_port=free_port(),
            http_port=free_port(),
        )
        secrets = load_dev_secrets(self.root, {"AUTOM_AUTH_PRIVATE_KEY": signing_key})
        # NATS with the services' users and permissions, as make run and deployments run it.
        self._nats_admin = token_hex(16)
        envs = service_envs(self.config, secrets, os.environ, self._nats_admin)
        extra = env or {}
        replicated = {"AUTOM_NATS_STREAM_REPLICAS": str(min(nats_nodes, 3))}
        for name in services:
            envs[name] = {**envs[name], **(replicated if nats_nodes > 1 else {})}
            envs[name] = {**envs[name], **extra.get(name, {})}
        self._services: dict[str, _Service] = {}
        for spec in build_services(self.config, envs, python_module_command):
            if spec.name not in services:
                continue
            self._services[spec.name] = _Service(spec, self.root / f"{spec.name}.log")
            for n in range(2, (replicas or {}).get(spec.name, 1) + 1):
                port = free_port()
                copy = dataclasses.replace(
                    spec,
                    name=f"{spec.name}-{n}",
                    env={**spec.env, "AUTOM_GRPC_PORT": str(port)},
                    health=GrpcHealth(f"{EMBEDDED_HOST}:{port}"),
                    migrate=None,  # one schema, migrated once
                    at_head=None,
                )
                self._services[copy.name] = _Service(copy, self.root / f"{copy.name}.log")
        self._ready_timeout = ready_timeout
        self.postgres = EmbeddedPostgres(
            self.root / "postgres", self.config.pg_port, fsync=True, host=EMBEDDED_HOST
        )
        # Every node holds every user: a service or test may land on any of them.
        authorization = authorization_conf(nats_passwords(self._nats_admin))
        route_ports = [free_port() for _ in range(nats_nodes)] if nats_nodes > 1 else []
        self.nats_nodes = [
            EmbeddedNats(
                self.root / f"nats-{i}" if nats_nodes > 1 else self.root / "nats",
                port,
                host=EMBEDDED_HOST,
                server_name=f"autom-fault-n{i}" if nats_nodes > 1 else None,
                cluster=NatsCluster("autom-fault", route_ports[i], route_ports)
                if nats_nodes > 1
                else None,
                authorization=authorization,
            )
            for i, port in enumerate(client_ports)
        ]
        self.nats = self.nats_nodes[0]

    # ---- addresses ----------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """URL of the services' database."""
        return database_url(self.config)

    @property
    def nats_url(self) -> str:
        """URL of the nats-server as its admin (every subject); a cluster's is every node's,
        comma-separated, each with the admin's credentials."""
        return with_credentials(nats_url(self.config), ADMIN_USER, self._nats_admin)

    @property
    def nats_servers(self) -> list[str]:
        """URL of each NATS node as the admin, for clients that take a list."""
        admin = ADMIN_USER, self._nats_admin
        return [with_credentials(node.url, *admin) for node in self.nats_nodes]

    @property
    def instances(self) -> list[str]:
        """Every service process by name (replicas as `<service>-<n>`)."""
        return list(self._services)

    def address(self, service: str) -> str:
        """host:port of a service's gRPC server, or of one replica (`<service>-<n>`)."""
        env = self._services[service].spec.env
        return f"{EMBEDDED_HOST}:{env['AUTOM_GRPC_PORT']}"

    def pid(self, service: str) -> int | None:
        """Process id of a running service."""
        proc = self._services[service].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def log_tail(self, service: str, lines: int = 40) -> str:
        """The last lines a service wrote (all its incarnations share one log file)."""
        return self._services[service].log_tail(lines)

    # ---- whole stack --------------------------------------------------------------------
    async def start(self, *, migrate: Callable[[str], Awaitable[None]] | None = None) -> None:
        """Start the servers, migrate every schema, start the services and wait until ready.

        `migrate(database_url)` replaces the services' own `migrate` commands (a caller that
        has the schemas at hand saves an interpreter start per service).
        """
        self.postgres.start()
        self.postgres.create_database(DATABASE)
        for node in self.nats_nodes:
            node.start()
        await self.wait_jetstream()
        if migrate is not None:
            await migrate(self.database_url)
        else:
            await asyncio.gather(*(self._migrate(s) for s in self._services.values()))
        for service in self._services.values():
            self._spawn(service)
        await asyncio.gather(*(self._wait_ready(s) for s in self._services.values()))

    def close(self) -> None:
        """Kill every service (process group and all), then stop NATS and PostgreSQL."""
        for service in self._services.values():
            self._kill(service)
        for node in self.nats_nodes:
            with contextlib.suppress(Exception):
                node.stop(timeout=5)
        with contextlib.suppress(Exception):
            self.postgres.stop(timeout=10)

    # ---- services -----------------------------------------------------------------------
    def kill(self, service: str) -> None:
        """SIGKILL a service and everything in its process group; wait until it is gone."""
        self._kill(self._services[service])

    async def stop(self, service: str, timeout: float = 30.0) -> None:
        """SIGTERM a service, as an orchestrator scales down; SIGKILL it after `timeout`."""
        target = self._services[service]
        proc = target.proc
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, timeout)
        self._kill(target)

    def pause(self, service: str) -> None:
        """SIGSTOP a service: it holds its connections and leases but does nothing."""
        self._signal(service, signal.SIGSTOP)

    def resume(self, service: str) -> None:
        """SIGCONT a paused service."""
        self._signal(service, signal.SIGCONT)

    async def restart(self, service: str) -> None:
        """Start a killed service again and wait until it reports SERVING."""
        target = self._services[service]
        self._kill(target)
        self._spawn(target)
        await self._wait_ready(target)

    # ---- servers ------------------------------------------------------------------------
    def kill_postgres(self) -> None:
        """SIGKILL the postmaster and its backends at once (no shutdown checkpoint)."""
        _kill_group(self.postgres.pid, self.postgres.poll, "PostgreSQL")

    def restart_postgres(self) -> None:
        """Start PostgreSQL again on the same data directory and port (crash recovery)."""
        self.postgres.start()

    def kill_nats(self, node: int = 0) -> None:
        """SIGKILL a nats-server (the only one, or node `node` of the cluster)."""
        server = self.nats_nodes[node]
        _kill_group(server.pid, server.poll, f"nats-server {node}")

    def restart_nats(self, node: int = 0) -> None:
        """Start a nats-server again with the same name, store directory and ports."""
        self.nats_nodes[node].start()

    async def wait_jetstream(self, timeout: float = 60.0) -> None:
        """Until JetStream answers API requests (a cluster has elected its meta leader)."""
        nc = await nats.connect(self.nats_servers, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream(timeout=2)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    await js.account_info()
                    return
                except (nats.errors.Error, TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        what = f"JetStream not ready within {timeout:.0f} s"
                        raise FaultStackError(what) from exc
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    async def stream_leader(self, stream: str, timeout: float = 30.0) -> int:
        """Index of the node leading `stream` (waits, bounded, while it has no leader)."""
        names = [node.server_name for node in self.nats_nodes]
        nc = await nats.connect(self.nats_servers, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream(timeout=2)
            deadline = time.monotonic() + timeout
            last = ""
            while time.monotonic() < deadline:
                try:
                    info = await js.stream_info(stream)
                except (nats.errors.Error, TimeoutError) as exc:
                    last = repr(exc)
                else:
                    leader = info.cluster.leader if info.cluster is not None else None
                    if leader in names:
                        return names.index(leader)
                    last = f"leader {leader!r}"
                await asyncio.sleep(0.2)
            raise FaultStackError(f"{stream} has no leader within {timeout:.0f} s ({last})")
        finally:
            await nc.close()

    # ---- plumbing -----------------------------------------------------------------------
    async def _migrate(self, service: _Service) -> None:
        argv = service.spec.migrate
        if argv is None:
            return
        with service.log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(service.spec.env),
                **child_options(signal.SIGKILL),
            )
            try:
                code = await asyncio.wait_for(proc.wait(), 120)
            finally:
                if proc.returncode is None:
                    signal_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
        if code != 0:
            raise FaultStackError(
                f"{service.spec.name} migration exited with {code}:\n{service.log_tail()}"
            )

    def _spawn(self, service: _Service) -> None:
        service.starts += 1
        log: IO[bytes]
        with service.log_path.open("ab") as log:
            log.write(f"---- start #{service.starts} ----\n".encode())
            log.flush()
            service.proc = subprocess.Popen(
                list(service.spec.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(service.spec.env),
                **child_options(signal.SIGKILL),
            )
        logger.info("started %s (pid %d)", service.spec.name, service.proc.pid)

    async def _wait_ready(self, service: _Service) -> None:
        proc = service.proc
        assert proc is not None
        healthy = asyncio.create_task(_until_healthy(service.spec.health))
        deadline = time.monotonic() + self._ready_timeout
        try:
            while not healthy.done():
                if proc.poll() is not None:
                    raise FaultStackError(
                        f"{service.spec.name} exited with {proc.returncode} before it was "
                        f"ready:\n{service.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise FaultStackError(
                        f"{service.spec.name} not SERVING within {self._ready_timeout:.0f} s:\n"
                        f"{service.log_tail()}"
                    )
                await asyncio.wait({healthy}, timeout=0.1)
            healthy.result()
        finally:
            healthy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await healthy

    def _signal(self, service: str, sig: signal.Signals) -> None:
        proc = self._services[service].proc
        if proc is None or proc.poll() is not None:
            raise FaultStackError(f"{service} is not running")
        signal_group(proc.pid, sig)

    @staticmethod
    def _kill(service: _Service) -> None:
        proc, service.proc = service.proc, None
        if proc is None:
            return
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill_group(pid: int | None, poll: Callable[[], int | None], what: str) -> None:
    if pid is None:
        raise FaultStackError(f"{what} is not running")
    signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while poll() is None:
        if time.monotonic() > deadline:
            raise FaultStackError(f"{what} (pid {pid}) survived SIGKILL")
        time.sleep(0.02)
