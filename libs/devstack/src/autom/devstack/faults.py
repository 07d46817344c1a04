"""A stack for fault tests: its own PostgreSQL and NATS, and services as real processes that
a test can kill (-9), stop (SIGSTOP) and restart, the servers included.

Built from the same pieces as `make run` (ports, environments, commands, migrations, health
checks), with fixed loopback ports so a restarted process comes back where clients look for
it. Start it from the main thread: children are tied to the thread that forks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from secrets import token_hex
from typing import IO

from autom.core.natsauth import ADMIN_USER, authorization_conf
from autom.devstack._proc import child_options, signal_group
from autom.devstack.config import DevConfig, load_dev_secrets
from autom.devstack.nats import EmbeddedNats, nats_passwords, with_credentials
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
from autom.devstack.supervisor import ServiceSpec, _until_healthy

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
    """PostgreSQL (fsync on), nats-server (file store) and services, each killable."""

    def __init__(
        self,
        root: Path,
        *,
        signing_key: str,
        services: Sequence[str] = DEFAULT_SERVICES,
        env: Mapping[str, Mapping[str, str]] | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = DevConfig(
            home=self.root,
            host=EMBEDDED_HOST,
            pg_port=free_port(),
            nats_port=free_port(),
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
        for name in services:
            envs[name] = {**envs[name], **extra.get(name, {})}
        self._services = {
            spec.name: _Service(spec, self.root / f"{spec.name}.log")
            for spec in build_services(self.config, envs, python_module_command)
            if spec.name in services
        }
        self._ready_timeout = ready_timeout
        self.postgres = EmbeddedPostgres(
            self.root / "postgres", self.config.pg_port, fsync=True, host=EMBEDDED_HOST
        )
        self.nats = EmbeddedNats(
            self.root / "nats",
            self.config.nats_port,
            host=EMBEDDED_HOST,
            authorization=authorization_conf(nats_passwords(self._nats_admin)),
        )

    # ---- addresses ----------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        """URL of the services' database."""
        return database_url(self.config)

    @property
    def nats_url(self) -> str:
        """URL of the nats-server, as its admin (every subject)."""
        return with_credentials(nats_url(self.config), ADMIN_USER, self._nats_admin)

    def address(self, service: str) -> str:
        """host:port of a service's gRPC server."""
        env = self._services[service].spec.env
        return env[f"AUTOM_{service.upper()}_ADDR"]

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
        self.nats.start()
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
        with contextlib.suppress(Exception):
            self.nats.stop(timeout=5)
        with contextlib.suppress(Exception):
            self.postgres.stop(timeout=10)

    # ---- services -----------------------------------------------------------------------
    def kill(self, service: str) -> None:
        """SIGKILL a service and everything in its process group; wait until it is gone."""
        self._kill(self._services[service])

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

    def kill_nats(self) -> None:
        """SIGKILL nats-server."""
        _kill_group(self.nats.pid, self.nats.poll, "nats-server")

    def restart_nats(self) -> None:
        """Start nats-server again with the same store directory and port."""
        self.nats.start()

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
